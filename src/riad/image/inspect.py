"""``riad inspect IMAGE``: what is inside a vm image and what it costs.

Reads the image's ``manifest.json``, checks the kernel and initramfs files
against the sizes and hashes recorded there, and reports sizes by part, the
largest files, the boot arguments and the kernel variant, and why each module
and data file is there (:data:`REASONS`): the service's own, riad's, what
start-up loaded, what the warm-up requests loaded, what was declared
(``--include``); ``riad inspect IMAGE --modules`` lists them one by one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from riad.image import ImageError

PARTS = ("kernel", "interpreter", "libraries", "stdlib", "riad", "packages", "service", "data")


def load_manifest(image: Path) -> dict[str, Any]:
    path = image / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"{image} is not a riad vm image (no readable manifest.json): "
            "build one with `riad build SERVICE -t vm -o DIR`"
        ) from exc
    return manifest


def _mb(size: int) -> str:
    return f"{size / 1e6:7.2f} MB"


def verify(image: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found comparing the image files with the manifest (none: [])."""
    problems = []
    for key in ("kernel", "initramfs"):
        entry = manifest.get(key)
        if not entry or not entry.get("file"):
            continue
        path = image / entry["file"]
        if not path.exists():
            problems.append(f"{entry['file']} is missing")
            continue
        data = path.read_bytes()
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['file']} does not match the manifest")
    return problems


def part_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    """Uncompressed bytes per part (zip members counted, not the zip itself)."""
    sizes: Counter[str] = Counter()
    sizes["kernel"] = int(manifest["kernel"]["size"])
    for entry in manifest["files"]:
        sizes[entry["part"]] += int(entry["size"])
    return {part: sizes.get(part, 0) for part in (*PARTS, *sorted(set(sizes) - set(PARTS)))}


def _code_line(code: dict[str, bool] | None) -> str:
    """How the modules were compiled (images made before riad recorded it: unknown)."""
    if code is None:
        return "(not recorded)"
    docstrings = "with docstrings" if code.get("docstrings") else "without docstrings"
    columns = "with column positions" if code.get("columns") else "without column positions"
    return f"compiled at build time, {docstrings}, {columns}"


def _python_line(manifest: dict[str, Any]) -> str:
    """Which interpreter the image carries (``--python``)."""
    python = manifest.get("python")
    if python is None or python.get("build") == "stock":
        return "stock (the building host's, with its shared libraries and lib-dynload)"
    modules = python.get("modules") or []
    libc = python.get("libc", "glibc")
    return (
        f"static ({python['version']}, Debian's source package; statically linked against "
        f"{libc}, -Os, "
        f"{len(modules)} extension modules built in: {' '.join(modules)})"
    )


def _volumes_line(manifest: dict[str, Any]) -> str:
    """The volumes the service declares: each a virtio-blk disk with ext4, mounted at
    /volumes/NAME (riad run --volume NAME=FILE says which file)."""
    volumes = (manifest.get("devices") or {}).get("volumes") or []
    if not volumes:
        return "none"
    from riad.backends.volume import format_bytes

    return (
        "; ".join(
            f"{v['name']} ({format_bytes(int(v['size']))}, /volumes/{v['name']}: virtio-blk, ext4)"
            for v in volumes
        )
        + " (riad run IMAGE -t vm --volume NAME=FILE)"
    )


REASONS = {
    "service": "the service's own modules",
    "start-up": "loaded by the traced start-up",
    "warm-up": "loaded or read by the warm-up requests",
    "declared": "declared: --include, app.lazy_imports",
    "riad": "riad's own (PID 1, its seal, the module table)",
}
"""Why a module or data file is in an image (the manifest's ``why``)."""


def _name(entry: dict[str, Any]) -> str:
    """A module's name from its file entry (``modules.packed:pkg/mod`` -> ``pkg.mod``)."""
    path = str(entry["path"])
    if ":" in path:  # in the module table
        return path.partition(":")[2].removesuffix("/__init__").replace("/", ".")
    return path


def reasons(manifest: dict[str, Any], *, every: bool = False) -> list[str]:
    """Why the modules and data files are in the image: a count by reason, the warm-up's
    and the declared ones by name (``every``: each of them)."""
    entries = [entry for entry in manifest["files"] if "why" in entry]
    if not entries:
        return ["why          (not recorded: built before riad recorded it)"]
    lines = ["why"]
    for why, text in REASONS.items():
        modules = sorted(_name(e) for e in entries if e["why"] == why and e["part"] != "data")
        data = sorted(_name(e) for e in entries if e["why"] == why and e["part"] == "data")
        if not modules and not data:
            continue
        count = f"{len(modules)} modules" + (f", {len(data)} data files" if data else "")
        lines.append(f"  {why:<11}{count}: {text}")
        if every or why in ("warm-up", "declared"):
            lines += [f"      {name}" for name in modules + data]
    return lines


def report(image: Path, largest: int = 12, *, modules: bool = False) -> str:
    """The human-readable inspection of ``image`` (``modules``: why each module is in it)."""
    manifest = load_manifest(image)
    kernel = manifest["kernel"]
    initramfs = manifest["initramfs"]
    lines = [
        f"image        {image}",
        f"service      {manifest['service']['name']} (module {manifest['service']['module']})",
        f"built by     riad {manifest['riad_version']}, Python {manifest['python_version']}",
        f"kernel       variant {kernel['variant']} (net {kernel['net']}), "
        f"linux {kernel['version']}, {kernel['format']}"
        + (f" ({kernel['format_reason']})" if kernel.get("format_reason") else ""),
        f"boot args    {' '.join(manifest['boot_args']) or '(none)'}",
        f"memory       {manifest['memory_mb']} MB",
        f"cmdline      {manifest['kernel_cmdline']}",
        f"interpreter  {_python_line(manifest)}",
        f"code         {_code_line(manifest.get('code'))}",
        f"volumes      {_volumes_line(manifest)}",
        "",
        "on disk",
        f"  kernel     {_mb(kernel['size'])}  {kernel['file']}",
    ]
    if initramfs.get("file"):
        lines.append(
            f"  initramfs  {_mb(initramfs['size'])}  {initramfs['file']}"
            f" ({initramfs['compression']})"
        )
    else:
        lines.append(f"  initramfs  built into the kernel ({initramfs['compression']})")
    lines += ["", "by part (uncompressed)"]
    sizes = part_sizes(manifest)
    for part, size in sizes.items():
        lines.append(f"  {part:<11}{_mb(size)}")
    lines.append(f"  {'total':<11}{_mb(sum(sizes.values()))}")
    lines += ["", *reasons(manifest, every=modules)]
    lines += ["", f"largest files (of {len(manifest['files'])})"]
    biggest = sorted(manifest["files"], key=lambda f: (-int(f["size"]), f["path"]))[:largest]
    for entry in biggest:
        lines.append(f"  {_mb(int(entry['size']))}  {entry['path']}  [{entry['part']}]")
    problems = verify(image, manifest)
    lines.append("")
    lines.append(
        "check        " + ("; ".join(problems) if problems else "files match the manifest")
    )
    return "\n".join(lines)
