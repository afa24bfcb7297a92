"""Kernel provisioning: configuration fragments, cache keys, errors."""

from pathlib import Path

import pytest

from riad.image import ImageError, kernel
from riad.image.kernel import (
    KernelSource,
    cache_key,
    cache_root,
    config_fragment,
    config_mismatches,
    user_kernel,
    wanted_options,
)


def test_variants_differ_only_in_the_ip_stack() -> None:
    direct = wanted_options(config_fragment("direct"))
    socket = wanted_options(config_fragment("socket"))
    assert direct["CONFIG_INET"] == "n"
    assert socket["CONFIG_INET"] == "y"
    for name in ("CONFIG_PACKET", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_MMIO", "CONFIG_PVH"):
        assert direct[name] == socket[name] == "y"
    assert direct["CONFIG_MODULES"] == direct["CONFIG_PCI"] == direct["CONFIG_ACPI"] == "n"


def test_unknown_variant_names_the_choices() -> None:
    with pytest.raises(ImageError, match="direct, socket"):
        config_fragment("bogus")  # type: ignore[arg-type]


def test_mismatches_list_options_the_kernel_did_not_take() -> None:
    wanted = {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "y"}
    final = wanted_options("CONFIG_A=y\n# CONFIG_C is not set\n")
    assert config_mismatches(wanted, final) == ["CONFIG_C=y (got n)"]


def test_cache_key_follows_source_and_variant() -> None:
    source = KernelSource(Path("/nonexistent.tar.xz"), "6.1.1-1")
    newer = KernelSource(Path("/nonexistent.tar.xz"), "6.1.2-1")
    assert cache_key(source, "direct") == cache_key(source, "direct")
    assert cache_key(source, "direct") != cache_key(source, "socket")
    assert cache_key(source, "direct") != cache_key(newer, "direct")


def test_cache_root_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RIAD_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("RIAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "riad"


def test_missing_source_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kernel, "SOURCE_DIR", tmp_path)
    with pytest.raises(ImageError, match=r"apt-get install linux-source-6\.1"):
        kernel.find_source(install=False)


def test_user_kernel_is_recognised_by_its_header(tmp_path: Path) -> None:
    elf = tmp_path / "vmlinux"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"MZ" + bytes(60))
    assert user_kernel(elf).boot_file == elf
    assert user_kernel(bz).vmlinux is None and user_kernel(bz).boot_file == bz
    with pytest.raises(ImageError, match="does not exist"):
        user_kernel(tmp_path / "missing")
