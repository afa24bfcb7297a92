"""Just enough ELF to pack an interpreter: its loader and libraries' names.

:func:`elf_info` reads a 64-bit little-endian ELF file's program interpreter
(``PT_INTERP``) and ``DT_SONAME``; :func:`shared_libraries` asks the system's
``ldd`` which library file each ``DT_NEEDED`` name resolves to (the loader's
own search rules, ``RUNPATH`` and the ld.so cache included).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from riad.image import ImageError

ELF_MAGIC = b"\x7fELF"
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3
_DT_NULL = 0
_DT_STRTAB = 5
_DT_SONAME = 14


@dataclass(frozen=True)
class ElfInfo:
    interpreter: str | None
    soname: str | None


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


def elf_info(path: Path) -> ElfInfo:
    """Program interpreter and soname of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise ImageError(f"{path} is not a 64-bit little-endian ELF file")
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", data, 0x20)[0],
        *struct.unpack_from("<HH", data, 0x36),
    )
    loads: list[tuple[int, int, int]] = []
    interpreter = None
    dynamic = None
    for index in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + index * phentsize
        )
        if p_type == _PT_INTERP:
            interpreter = data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    soname = None
    if dynamic is not None:
        entries = [
            struct.unpack_from("<qQ", data, dynamic[0] + i) for i in range(0, dynamic[1] - 15, 16)
        ]
        strtab = next((value for tag, value in entries if tag == _DT_STRTAB), None)
        name_at = next((value for tag, value in entries if tag == _DT_SONAME), None)
        if strtab is not None and name_at is not None:
            base = _file_offset(strtab, loads)
            if base is not None:
                end = data.index(b"\0", base + name_at)
                soname = data[base + name_at : end].decode()
    return ElfInfo(interpreter=interpreter, soname=soname)


def _file_offset(vaddr: int, loads: list[tuple[int, int, int]]) -> int | None:
    for start, offset, size in loads:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    return None


def shared_libraries(path: Path) -> dict[str, Path]:
    """``{needed name: library path}`` for ``path`` and its dependencies (via ``ldd``).

    The program interpreter appears under its absolute path.
    """
    if shutil.which("ldd") is None:
        raise ImageError("ldd not found: install it with `apt-get install libc-bin`")
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if "not a dynamic executable" in done.stdout + done.stderr:
            return {}
        raise ImageError(f"ldd {path} failed: {done.stderr.strip()}")
    libraries: dict[str, Path] = {}
    for raw in done.stdout.splitlines():
        line = raw.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            target = rest.strip().split(" (")[0].strip()
            if target == "not found":
                raise ImageError(f"{path} needs {name.strip()}, which is not installed")
            if target:
                libraries[name.strip()] = Path(target)
        elif line.startswith("/"):
            loader = line.split(" (")[0].strip()
            libraries[loader] = Path(loader)
    return libraries
