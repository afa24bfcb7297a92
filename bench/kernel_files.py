"""Boot cost of an image's kernel file and initramfs compression, under TCG.

Run: .venv/bin/python bench/kernel_files.py IMAGE [--runs N] [--memory MiB]
[--kernel NAME=FILE]... [--initrd NAME=FILE]...

``IMAGE`` is a vm image built with ``riad build -t vm`` (its QEMU command line
is taken from its manifest, without the NIC). Every kernel given is booted with
every initramfs given (default: the image's own kernel and initramfs), one of
each in turn, ``--runs`` times, and the time from QEMU's start to PID 1's first
console line (``riad-vm: pid1``) is taken: the kernel's load and decompression,
its boot, the initramfs' decompression and unpacking, and the interpreter's
start. The files' sizes are given as they are and through ``zstd -19``.

The compressed kernels of the run in docs/benchmarks.md were made from riad's
``direct`` kernel's build tree with another ``CONFIG_KERNEL_*`` choice and
``make bzImage``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from riad.targets.vm.build import compress


def _named(specs: list[str], default: Path) -> dict[str, Path]:
    if not specs:
        return {default.name: default}
    named = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec!r}: give NAME=FILE")
        named[name] = Path(file)
    return named


def to_pid1(command: list[str]) -> float | None:
    """Seconds from QEMU's start to PID 1's first line; None if it never came."""
    start = time.monotonic()
    qemu = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert qemu.stdout is not None
    try:
        for line in qemu.stdout:
            if b"riad-vm: pid1" in line:
                return time.monotonic() - start
        return None
    finally:
        qemu.kill()
        qemu.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory", type=int, default=80, help="guest MiB (default 80)")
    parser.add_argument("--kernel", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--initrd", action="append", default=[], metavar="NAME=FILE")
    args = parser.parse_args()
    manifest = json.loads((args.image / "manifest.json").read_text())
    base = list(manifest["qemu"])
    if "-netdev" in base:
        base = base[: base.index("-netdev")]
    base[base.index("-m") + 1] = f"{args.memory}M"
    kernels = _named(args.kernel, args.image / manifest["kernel"]["file"])
    initrds = _named(args.initrd, args.image / manifest["initramfs"]["file"])
    pairs = [(k, i) for k in kernels for i in initrds]
    times: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    for _ in range(args.runs):
        for kernel, initrd in pairs:
            command = list(base)
            command[command.index("-kernel") + 1] = str(kernels[kernel])
            command[command.index("-initrd") + 1] = str(initrds[initrd])
            took = to_pid1(command)
            if took is not None:
                times[(kernel, initrd)].append(took)
    print(f"QEMU start to PID 1 (TCG, {args.memory} MiB, {args.runs} runs each, interleaved):")
    print()
    print("| kernel | bytes (zstd -19) | initramfs | bytes | to PID 1, median | min | max |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for kernel, initrd in pairs:
        got = times[(kernel, initrd)]
        kfile, ifile = kernels[kernel], initrds[initrd]
        kpacked = len(compress(kfile.read_bytes(), "zstd"))
        shown = (
            f"{statistics.median(got):.3f} s | {min(got):.3f} s | {max(got):.3f} s"
            if got
            else "none | | "
        )
        print(
            f"| {kernel} | {kfile.stat().st_size:,} ({kpacked:,}) | {initrd} "
            f"| {ifile.stat().st_size:,} | {shown} |"
        )


if __name__ == "__main__":
    main()
