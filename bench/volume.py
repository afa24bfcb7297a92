"""SQLite on a volume, on every target, against host SQLite on the same disk; image
sizes with and without a volume; the first answer of a vm with a volume.

Run (as root): .venv/bin/python bench/volume.py [--runs N] [--txns N] [--reads N] [--dir DIR]

1. **Transactions and reads.** The service ``bench/volume_service`` commits
   ``--txns`` one-row transactions (``synchronous=FULL``) and answers
   ``--reads`` point queries, in WAL and in rollback-journal mode, on its
   volume; the bench runs the same code (``measure``) in this process on
   host SQLite in a folder beside the volumes (``--dir``: all on one disk).
   Contenders in turns, ``--runs`` times: host, ``riad unix``, ``riad
   sandbox`` (sealed), ``riad vm`` (TCG: emulated; its disk image on the same
   disk, ``cache=none``). Medians, and each target's ratio to the host.
2. **Image size.** The link shortener (``examples/shortener``) built for the
   vm as it is (a volume: the kernel with the block layer and ext4) and with
   its volume taken out (its links in memory): kernel, initramfs, total.
3. **First answer.** Both images booted ``--runs`` times in turns, in a
   network namespace made for the run, with ``riad run IMAGE -t vm
   --timings``: QEMU start to the first HTTP answer (the runner's probe).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "bench" / "volume_service" / "service.py"
SHORTENER = ROOT / "examples" / "shortener"
RIAD = [sys.executable, "-m", "riad"]
_RESULT = re.compile(r"bench journal=(\w+) txn_per_s=([\d.]+) read_per_s=([\d.]+)")
_ANSWER = re.compile(r"first answered request ([\d.]+) s")


def _riad(*args: str, prefix: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [*prefix, *RIAD, *args], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"riad {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def _target_rates(
    target: str, volume: Path, txns: int, reads: int
) -> dict[str, tuple[float, float]]:
    extra = ("--accel", "tcg") if target == "vm" else ()
    out = _riad("run", str(SERVICE), "-t", target, *extra, "--volume", f"data={volume}",
                "--txns", str(txns), "--reads", str(reads))  # fmt: skip
    found = {m[0]: (float(m[1]), float(m[2])) for m in _RESULT.findall(out)}
    if set(found) != {"wal", "delete"}:
        raise SystemExit(f"no figures from {target}:\n{out}")
    return found


def sqlite_rates(work: Path, runs: int, txns: int, reads: int) -> list[str]:
    sys.path.insert(0, str(SERVICE.parent))
    from service import measure  # type: ignore[import-not-found]

    host_dir = work / "host"
    host_dir.mkdir()
    contenders = ("host", "unix", "sandbox", "vm")
    rates: dict[str, dict[str, list[tuple[float, float]]]] = {c: {} for c in contenders}
    for _ in range(runs):
        for who in contenders:
            if who == "host":
                found = {j: measure(host_dir, j, txns, reads) for j in ("wal", "delete")}
            else:
                volume = work / (f"{who}.ext4" if who == "vm" else who)
                found = _target_rates(who, volume, txns, reads)
            for journal, pair in found.items():
                rates[who].setdefault(journal, []).append(pair)
    lines = [
        f"SQLite, synchronous=FULL, {txns} one-row transactions then {reads} point reads; "
        f"median of {runs} runs in turns; ratio to host SQLite on the same disk",
        "",
        "| contender | WAL txn/s | ratio | WAL reads/s | ratio | rollback txn/s | ratio | "
        "rollback reads/s | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    host = {j: _medians(rates["host"][j]) for j in ("wal", "delete")}
    for who in contenders:
        cells = [who if who == "host" else f"riad {who}"]
        for journal in ("wal", "delete"):
            txn, read = _medians(rates[who][journal])
            cells += [f"{txn:,.0f}", f"{txn / host[journal][0]:.2f}"]
            cells += [f"{read:,.0f}", f"{read / host[journal][1]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _without_volume(work: Path) -> Path:
    """The shortener with its volume taken out: its links in an in-memory database."""
    copy = work / "shortener-novolume"
    shutil.copytree(SHORTENER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    service = copy / "service.py"
    text = service.read_text()
    text = text.replace('data = app.volume("data", size="64M", help="the links (SQLite)")\n', "")
    text = text.replace('make_app(data.path / "links.sqlite3")', 'make_app(Path(":memory:"))')
    text = text.replace("volume=str(data.path)", 'volume="none"')
    text = text.replace("import riad\n", "from pathlib import Path\n\nimport riad\n", 1)
    service.write_text(text)
    return copy


def _sizes(image: Path) -> tuple[int, int]:
    kernel = (image / "kernel").stat().st_size
    initramfs = sum(p.stat().st_size for p in image.glob("initramfs.cpio*"))
    return kernel, initramfs


def images_and_first_answer(work: Path, runs: int) -> list[str]:
    images = {"with a volume": work / "img-volume", "without": work / "img-plain"}
    _riad("build", str(SHORTENER), "-t", "vm", "-o", str(images["with a volume"]))
    _riad("build", str(_without_volume(work)), "-t", "vm", "-o", str(images["without"]))
    lines = [
        "examples/shortener as a vm image (lz4), with its volume and with it taken out",
        "",
        "| image | kernel | initramfs | total | first answer (median) |",
        "|---|---|---|---|---|",
    ]
    answers: dict[str, list[float]] = {name: [] for name in images}
    netns = "riad-bench-volume"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        for _ in range(runs):
            for name, image in images.items():
                disk = ("--volume", f"data={work / 'answer.ext4'}") if "volume" in name else ()
                out = _riad_timed(netns, image, disk)
                answers[name].append(float(_ANSWER.findall(out)[-1]))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    for name, image in images.items():
        kernel, initramfs = _sizes(image)
        first = statistics.median(answers[name])
        lines.append(
            f"| {name} | {kernel / 1e6:.2f} MB | {initramfs / 1e6:.2f} MB | "
            f"{(kernel + initramfs) / 1e6:.2f} MB | {first:.3f} s |"
        )
    return lines


def _riad_timed(netns: str, image: Path, disk: tuple[str, ...]) -> str:
    """Boot ``image`` with --timings until its first answer, then stop it."""
    command = [
        "ip", "netns", "exec", netns, *RIAD, "run", str(image), "-t", "vm", "--accel", "tcg",
        "--timings", *disk, "--port", "80",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"GET / HTTP/1.0" 200' in line:
            break
    # the runner's probe was answered (the access log says so); Ctrl-C stops the vm, and
    # the runner prints its timings as it ends
    proc.send_signal(2)
    rest, _ = proc.communicate(timeout=120)
    return "".join(lines) + rest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--txns", type=int, default=300)
    parser.add_argument("--reads", type=int, default=20000)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the volumes go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="riad-bench-volume-", dir=args.dir) as tmp:
        work = Path(tmp)
        lines = sqlite_rates(work, args.runs, args.txns, args.reads)
        lines += ["", *images_and_first_answer(work, args.runs)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
