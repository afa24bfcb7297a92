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
    flavour,
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


def test_the_containerdisk_kernel_adds_pci_to_a_variant_and_is_cached_apart() -> None:
    for variant in ("direct", "socket"):
        plain = wanted_options(config_fragment(variant))
        with_pci = wanted_options(config_fragment(variant, pci=True))
        assert plain["CONFIG_PCI"] == "n" and "CONFIG_VIRTIO_PCI" not in plain
        for name in ("CONFIG_PCI", "CONFIG_PCI_MSI", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_NET"):
            assert with_pci[name] == "y"
        assert {k: v for k, v in with_pci.items() if k in plain and k != "CONFIG_PCI"} == {
            k: v for k, v in plain.items() if k != "CONFIG_PCI"
        }
    assert wanted_options(config_fragment("direct", volume=True, pci=True))["CONFIG_VIRTIO_BLK"]
    assert (flavour("direct"), flavour("socket", pci=True)) == ("direct", "socket-pci")
    assert flavour("direct", volume=True, pci=True) == "direct-volume-pci"
    source = KernelSource(Path("/nonexistent.tar.xz"), "6.1.1-1")
    assert cache_key(source, "direct", pci=True) != cache_key(source, "direct")


def test_every_kernel_keeps_what_pid1_calls_and_only_volumes_get_devtmpfs() -> None:
    for variant in ("direct", "socket"):
        for volume in (False, True):
            wanted = wanted_options(config_fragment(variant, volume=volume))
            # The seal: capset (MULTIUSER), seccomp filters; no /proc or /sys is mounted.
            assert wanted["CONFIG_MULTIUSER"] == "y"
            assert wanted["CONFIG_SECCOMP_FILTER"] == "y"
            assert wanted["CONFIG_PROC_FS"] == wanted["CONFIG_SYSFS"] == "n"
            # PID 1 mounts devtmpfs only to find a volume's disk.
            assert wanted.get("CONFIG_DEVTMPFS", "n") == ("y" if volume else "n")


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


def test_cache_key_follows_the_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    source = KernelSource(Path("/nonexistent.tar.xz"), "6.1.1-1")
    shipped = cache_key(source, "direct")
    assert [name for name, _ in kernel.kernel_patches()] == [
        "page-aligned-image.patch",
        "unmap-initmem.patch",
    ]
    monkeypatch.setattr(kernel, "kernel_patches", lambda: [])
    assert cache_key(source, "direct") != shipped


def test_patches_apply_and_a_stale_one_names_the_fix(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "mm").mkdir(parents=True)
    (tree / "mm" / "init.c").write_text("int a;\nint b;\nint c;\n")
    change = (
        "--- a/mm/init.c\n+++ b/mm/init.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int d;\n int c;\n"
    )
    kernel._apply_patch(tree, "one.patch", change)
    assert (tree / "mm" / "init.c").read_text() == "int a;\nint d;\nint c;\n"
    with pytest.raises(ImageError) as caught:
        kernel._apply_patch(tree, "one.patch", change)  # no longer applies
    message = str(caught.value)
    assert "kernel patch one.patch does not apply" in message
    assert "riad kernel --path FILE" in message


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


def test_failed_build_names_the_fix(tmp_path: Path) -> None:
    tree = tmp_path / "not-a-kernel-tree"
    tree.mkdir()
    log = tmp_path / "build.log"
    with pytest.raises(ImageError) as caught:
        kernel._make(tree, tmp_path / "out", ["tinyconfig"], 1, log)
    message = str(caught.value)
    assert "kernel build failed" in message and str(log) in message
    assert "apt-get install make gcc flex bison bc libelf-dev" in message
    assert "riad kernel --path FILE" in message


def test_kernel_command_chooses_and_forgets_a_user_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from riad.cli import main

    monkeypatch.setenv("RIAD_CACHE_DIR", str(tmp_path / "cache"))
    mine = tmp_path / "vmlinux"
    mine.write_bytes(b"\x7fELF" + bytes(60))
    assert main(["kernel", "--path", str(mine), "--variant", "socket"]) == 0
    assert kernel.kernel_for("socket").boot_file == mine
    assert main(["kernel", "--variant", "socket"]) == 0
    assert f"socket: {mine} (chosen with --path)" in capsys.readouterr().out
    assert main(["kernel", "--reset"]) == 0
    assert kernel.selected_user_kernel("socket") is None
    assert main(["kernel", "--path", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unpacking_a_new_tree_removes_the_stale_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io
    import tarfile

    monkeypatch.setenv("RIAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kernel, "kernel_patches", lambda: [])
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    with tarfile.open(tarball, "w:xz") as archive:
        data = b"all:\n"
        info = tarfile.TarInfo("linux-source-6.1/Makefile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    trees = tmp_path / "cache" / "src"
    (trees / "linux-source-6.1-6.1.1-1-pdeadbeef").mkdir(parents=True)
    (trees / ".unpack-1").mkdir()
    said: list[str] = []
    tree = kernel._unpack(KernelSource(tarball, "6.1.2-1"), said.append)
    assert tree == trees / "linux-source-6.1-6.1.2-1"
    assert (tree / "Makefile").read_bytes() == b"all:\n"
    assert sorted(p.name for p in trees.iterdir()) == [".unpack-1", tree.name]
    assert any("linux-source-6.1-6.1.1-1-pdeadbeef" in line for line in said)
    assert kernel._unpack(KernelSource(tarball, "6.1.2-1"), said.append) == tree


def test_image_cache_keeps_the_most_recently_run(tmp_path: Path) -> None:
    import os

    from riad.image.kernel import prune_least_recent

    for i in range(5):
        (tmp_path / f"svc-{i}").mkdir()
        os.utime(tmp_path / f"svc-{i}", ns=(10**18 + i, 10**18 + i))
    os.utime(tmp_path / "svc-0", ns=(2 * 10**18, 2 * 10**18))  # the one just run
    (tmp_path / ".build-7").mkdir()
    (tmp_path / ".lock").write_text("")
    (tmp_path / "trace.json").write_text("{}")
    os.utime(tmp_path / "trace.json", ns=(10**18 - 1, 10**18 - 1))  # the oldest
    removed = prune_least_recent(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["svc-1", "svc-2", "svc-3", "trace.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build-7", ".lock", "svc-0", "svc-4"]
