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


def test_auto_takes_the_bzimage_of_riads_kernel(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    chosen = choose_kernel_format(kernel, "auto")
    assert (chosen.format, chosen.path) == ("bzImage", kernel.bzimage)
    assert chosen.reason.startswith("auto: ")


def test_an_explicit_format_is_taken(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    elf = choose_kernel_format(kernel, "elf")
    assert (elf.format, elf.path) == ("elf", kernel.vmlinux)
    assert "--kernel-format elf" in elf.reason
    assert choose_kernel_format(kernel, "bzimage").path == kernel.bzimage


def test_a_users_kernel_is_what_it_is(tmp_path: Path) -> None:
    only_bz = _kernel(tmp_path, vmlinux=False)
    assert choose_kernel_format(only_bz, "auto").format == "bzImage"
    with pytest.raises(ImageError, match="only there as bzImage"):
        choose_kernel_format(only_bz, "elf")
    only_elf = _kernel(tmp_path, bzimage=False)
    assert choose_kernel_format(only_elf, "auto").format == "elf"
