"""The data files a sealed service reads, and what ``--include`` names.

A service reads files besides its modules: templates, static files, a
package's data (``certifi``'s bundle, ``tzdata``, Django's admin pages and
locale files, a distribution's metadata). The start-up trace records every
file opened for reading, at start-up and during the warm-up requests
(:mod:`riad.image.trace`); :func:`data_files` keeps those a sealed service
may take along:

- files under the service's folder (``where="service"``), at the same path
  relative to it;
- files under a folder of the interpreter's path (the standard library,
  ``site-packages``: ``where="packages"``), at the same path relative to it,
  which is where the package's ``__file__`` points in an image too;
- the host's data the standard library reads, at its own path
  (``where="host"``): the time zone database (``zoneinfo``'s ``TZPATH``,
  which Django's ``TIME_ZONE`` reads) and OpenSSL's default CA bundle
  (``ssl.create_default_context()`` loads it). ``mimetypes`` reads ``mime.types``
  before the seal (``riad.targets.sandbox.warmup``), so it is not data; a
  vm's ``mimetypes`` uses its built-in table;
- files and folders named with ``--include PATH`` (``where="host"`` when
  they are in none of those), at their own path.

Python sources, bytecode and extension modules are not data (modules are
compiled or carried as such), nor is anything under ``/proc``, ``/sys`` or
``/dev``. Other files the service read are not taken (a host's ``/etc`` is
not the service's to carry): :func:`left_out` lists them for the build's log.

``--include`` takes modules and paths alike (:func:`split_includes`): a
module (``package.module``), every module of a package (``package.*``), or
a path (anything with a ``/``: ``static/``, ``./config.toml``,
``/usr/share/zoneinfo/Europe/Paris``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from riad.image import ImageError

if TYPE_CHECKING:
    from riad.image.trace import StartupTrace

__all__ = ["DataFile", "data_files", "left_out", "placed", "split_includes", "submodules"]

Where = Literal["service", "packages", "host"]
_CODE_SUFFIXES = (".py", ".pyc", ".pyw", *EXTENSION_SUFFIXES, ".so")
_NOT_DATA = ("/proc/", "/sys/", "/dev/")


@dataclass(frozen=True, slots=True)
class DataFile:
    """A file the sealed service may read: where it is on the host and relative to what."""

    host: Path
    """The file on the host, by the path it was opened with."""
    where: Where
    """``service``: under the service's folder; ``packages``: under a folder of the
    interpreter's path; ``host``: elsewhere (named with ``--include``)."""
    rel: str
    """Its path relative to that folder (``host``: its absolute path)."""
    why: str
    """``start-up``, ``warm-up`` or ``declared`` (``--include``)."""


def split_includes(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """``--include`` items as ``(modules, paths)``; ``package.*`` stays as written
    (see :func:`submodules`). ``ImageError`` for an item that is neither."""
    modules: list[str] = []
    paths: list[str] = []
    for item in items:
        name = item.removesuffix(".*")
        if "/" in item or item.startswith("."):
            paths.append(item)
        elif name and all(part.isidentifier() for part in name.split(".")):
            modules.append(item)
        else:
            raise ImageError(
                f"--include {item!r}: give a module (package.module), every module of a "
                "package (package.*), or a path with a / (static/, ./config.toml)"
            )
    return modules, paths


def submodules(pattern: str, path: Sequence[str]) -> list[str]:
    """``package.*``: the package and every module below it, found on ``path`` without
    importing anything; a plain module name is returned as it is."""
    if not pattern.endswith(".*"):
        return [pattern]
    package = pattern.removesuffix(".*")
    parts = package.split(".")
    found: list[str] = []
    for entry in path:
        folder = Path(entry or ".", *parts)
        if not (folder / "__init__.py").is_file():
            continue
        for file in sorted(folder.rglob("*")):
            if "__pycache__" in file.parts or not file.is_file():
                continue
            suffix = next((s for s in (".py", *EXTENSION_SUFFIXES) if file.name.endswith(s)), None)
            if suffix is None:
                continue
            rel = file.relative_to(folder).parts
            stem = rel[-1][: -len(suffix)]
            names = [*rel[:-1], *([] if stem == "__init__" else [stem])]
            if all(name.isidentifier() for name in names):
                found.append(".".join([package, *names]))
        break
    if not found:
        raise ImageError(f"--include {pattern}: no package {package!r} on the interpreter's path")
    return sorted(set(found))


def _is_data(path: str) -> bool:
    return (
        not path.endswith(_CODE_SUFFIXES)
        and "/__pycache__/" not in path
        and not any(path.startswith(prefix) for prefix in _NOT_DATA)
    )


def _system_data() -> tuple[str, ...]:
    """Host folders (ending in ``/``) and files of data the standard library reads (see
    the module text)."""
    import ssl
    import sysconfig

    zones = str(sysconfig.get_config_var("TZPATH") or "").split(os.pathsep)
    bundle = ssl.get_default_verify_paths().openssl_cafile
    return (*(os.path.join(zone, "") for zone in zones if zone), bundle)


def _place(file: Path, service_root: Path, roots: Sequence[Path]) -> tuple[Where, str] | None:
    if file.is_relative_to(service_root):
        return "service", file.relative_to(service_root).as_posix()
    for root in roots:
        if file.is_relative_to(root):
            return "packages", file.relative_to(root).as_posix()
    text = file.as_posix()
    known = _system_data()
    if any(text == path or (path.endswith("/") and text.startswith(path)) for path in known):
        return "host", text
    return None


def _roots(path: Sequence[str], service_root: Path) -> list[Path]:
    """The interpreter's path as resolved folders, longest first (a folder inside
    another, ``lib-dynload`` in the standard library, takes its own files)."""
    roots = {Path(entry).resolve() for entry in path if entry and Path(entry).is_dir()}
    roots.discard(service_root)
    return sorted(roots, key=lambda root: len(root.parts), reverse=True)


def data_files(
    trace: StartupTrace | None,
    service_root: Path,
    path: Sequence[str],
    include: Sequence[str] = (),
    *,
    base: Path | None = None,
) -> list[DataFile]:
    """The data files a sealed service takes: what ``trace`` saw read (none without
    one), and ``include``.

    ``path``: the interpreter's path the service ran with; ``include``: the
    paths of ``--include`` (a folder: every file below it), relative to ``base``
    (default: the working folder). Sorted by host path, each file once.
    """
    service_root = service_root.resolve()
    roots = _roots(path, service_root)
    found: dict[Path, DataFile] = {}
    for opened in trace.opened if trace is not None else ():
        # at the path it was opened by (a link: /usr/share/zoneinfo/UTC), else its own
        file = Path(os.path.abspath(opened))
        if not _is_data(opened) or not file.is_file() or not _is_data(str(file.resolve())):
            continue
        placed = _place(file, service_root, roots) or _place(file.resolve(), service_root, roots)
        if trace is not None and placed is not None and file not in found:
            found[file] = DataFile(file, placed[0], placed[1], trace.opened_why(opened))
    for item in include:
        given = Path(item).expanduser()
        target = (given if given.is_absolute() else (base or Path.cwd()) / given).resolve()
        if not target.exists():
            raise ImageError(f"--include {item}: no such file or folder")
        files = [target] if target.is_file() else sorted(target.rglob("*"))
        for file in files:
            if not file.is_file() or "__pycache__" in file.parts:
                continue
            placed = _place(file, service_root, roots) or ("host", file.as_posix())
            found[file] = DataFile(file, placed[0], placed[1], "declared")
    return [found[file] for file in sorted(found)]


def placed(file: str, service_root: Path, path: Sequence[str]) -> DataFile | None:
    """Where file ``file`` (which need not exist) would be taken, as :func:`data_files` takes
    what it finds; None if it would not be."""
    service_root = service_root.resolve()
    where = _place(Path(os.path.abspath(file)), service_root, _roots(path, service_root))
    return None if where is None else DataFile(Path(file), where[0], where[1], "")


def left_out(trace: StartupTrace, taken: Iterable[DataFile], skip: Iterable[str] = ()) -> list[str]:
    """Files ``trace`` saw read that are not data a sealed service takes (a host's
    ``/etc``...), for the build's log; ``skip``: folders of the trace's own."""
    kept = {data.host for data in taken}
    ignored = tuple(os.path.join(os.path.realpath(folder), "") for folder in skip)
    missing = []
    for opened in trace.opened:
        file = Path(os.path.abspath(opened))
        if not _is_data(opened) or opened.startswith(ignored) or not file.is_file():
            continue
        if file not in kept and not str(file.resolve()).startswith(ignored):
            missing.append(str(file))
    return sorted(set(missing))
