"""Which kernel file an image carries (ELF or bzImage), and why."""

from pathlib import Path

import pytest

from riad.image import ImageError
from riad.image.kernel import Kernel
from riad.targets.vm.build import choose_kernel_format


def _kernel(tmp_path: Path, *, vmlinux: bool = True, bzimage: bool = True) -> Kernel:
    elf = tmp_path / "vmlinux"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    packed = tmp_path / "bzImage"
    packed.write_bytes(b"MZ" + bytes(62))
    return Kernel(
        variant="direct",
        vmlinux=elf if vmlinux else None,
        bzimage=packed if bzimage else None,
        version="6.1",
        key="k",
    )


def test_auto_takes_the_bzimage_under_kvm_and_the_elf_under_tcg(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    asked: list[Path] = []

    def kvm(path: Path) -> bool:
        asked.append(path)
        return True

    under_kvm = choose_kernel_format(kernel, "auto", kvm)
    assert (under_kvm.format, under_kvm.path) == ("bzImage", kernel.bzimage)
    assert "KVM" in under_kvm.reason
    assert asked == [kernel.bzimage]
    under_tcg = choose_kernel_format(kernel, "auto", lambda _: False)
    assert (under_tcg.format, under_tcg.path) == ("elf", kernel.vmlinux)
    assert "TCG" in under_tcg.reason


def test_an_explicit_format_is_taken_without_probing(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)

    def no_probe(_: Path) -> bool:
        raise AssertionError("probed")

    assert choose_kernel_format(kernel, "elf", no_probe).path == kernel.vmlinux
    chosen = choose_kernel_format(kernel, "bzimage", no_probe)
    assert chosen.path == kernel.bzimage
    assert "--kernel-format bzimage" in chosen.reason


def test_a_users_kernel_is_what_it_is(tmp_path: Path) -> None:
    only_bz = _kernel(tmp_path, vmlinux=False)
    assert choose_kernel_format(only_bz, "auto", lambda _: False).format == "bzImage"
    with pytest.raises(ImageError, match="only there as bzImage"):
        choose_kernel_format(only_bz, "elf", lambda _: False)
    only_elf = _kernel(tmp_path, bzimage=False)
    assert choose_kernel_format(only_elf, "auto", lambda _: True).format == "elf"
