"""The crash harness: commit, get killed without warning, restart, check.

``crash_loop(target, volume, crashes, seed)`` runs the ``commits`` service
(``services/commits.py``) with ``riad run -t TARGET --volume data=VOLUME`` again
and again. Each run first reports what it recovered (``recovered head=N ok``:
SQLite's integrity check passed and every transaction is whole), then commits
numbered transactions, logging ``committed K`` once each COMMIT returned. The
harness waits for a commit a seeded number of transactions ahead, then kills
the whole process tree at once with SIGKILL (the service, its sandbox keeper
and supervisor; or QEMU and the runner): the service is caught at whatever
point of its next transaction it is, mid-write, mid-fsync, mid-checkpoint.

After each crash the next run must recover a head at least as high as the last
acknowledged commit (a commit acknowledged is durable), report its state
whole, and carry on. ``drop_caches``: between the crash and the restart the
host writes back and drops its page cache, so the restart reads the volume
from the disk rather than from memory the crashed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from riad.testing.process import ServiceProcess, riad_command

SERVICE = Path(__file__).resolve().parent / "services" / "commits.py"
_RECOVERED = re.compile(r"recovered head=(\d+) (ok|BROKEN.*)")
_COMMITTED = re.compile(r"app: committed (\d+)")
START_TIMEOUT_S = {"unix": 30.0, "sandbox": 60.0, "vm": 240.0}


@dataclass
class CrashReport:
    """What a crash loop saw (for the assertion message and the docs)."""

    target: str
    seed: int
    journal: str
    crashes: int = 0
    acknowledged: int = 0
    """The highest commit the harness saw acknowledged."""
    heads: list[int] = field(default_factory=list)
    """The head each restart recovered."""
    unreported: list[int] = field(default_factory=list)
    """Per crash: commits found on restart beyond the last acknowledged one."""

    def summary(self) -> str:
        extra = max(self.unreported, default=0)
        return (
            f"{self.target} ({self.journal}, seed {self.seed}): {self.crashes} crashes, "
            f"{self.acknowledged} transactions acknowledged, every one recovered; "
            f"at most {extra} committed but not yet reported at a crash"
        )


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [*_descendants(child), child]
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything it started, the deepest first, without warning."""
    for victim in [*_descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def drop_host_caches() -> None:
    """Write the host's dirty pages back and drop its page cache (root only)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def start(target: str, volume: Path, journal: str, *extra: str) -> ServiceProcess:
    command = riad_command(
        "run", str(SERVICE), "-t", target, "--volume", f"data={volume}", "--journal", journal
    )
    if target == "vm":  # the console is the runner's standard output: read it as stderr
        command = ["sh", "-c", 'exec "$@" 1>&2', "sh", *command, "--accel", "tcg"]
    return ServiceProcess([*command, *extra])


def _recovered(proc: ServiceProcess, target: str, report: CrashReport) -> int:
    line = proc.wait_for("recovered head=", START_TIMEOUT_S[target])
    found = _RECOVERED.search(line)
    assert found is not None, line
    head = int(found.group(1))
    assert found.group(2) == "ok", f"{report.summary()}: after a crash: {line}"
    assert head >= report.acknowledged, (
        f"{report.target} seed {report.seed}: transaction {report.acknowledged} was "
        f"acknowledged before the crash, the restart recovered only {head}"
    )
    return head


def crash_loop(
    target: str,
    volume: Path,
    crashes: int,
    seed: int,
    *,
    journal: str = "wal",
    drop_caches: bool = False,
    most_ahead: int = 25,
) -> CrashReport:
    """Crash the ``commits`` service ``crashes`` times on ``target`` (see the module doc)."""
    rng = random.Random(seed)
    report = CrashReport(target, seed, journal)
    print(f"crash loop: {target}, journal {journal}, seed {seed}, {crashes} crashes")
    for _ in range(crashes):
        with start(target, volume, journal) as proc:
            head = _recovered(proc, target, report)
            report.heads.append(head)
            if report.crashes:
                report.unreported.append(head - report.acknowledged)
            report.acknowledged = head
            wanted = head + rng.randint(1, most_ahead)
            proc.wait_for(f"committed {wanted}", START_TIMEOUT_S[target])
            kill_tree(proc.proc.pid)
            proc.wait(timeout_s=60)
            seen = [int(n) for n in _COMMITTED.findall(proc.output)]
            report.acknowledged = max([head, *seen])
            report.crashes += 1
        if drop_caches:
            drop_host_caches()
    with start(target, volume, journal, "--limit", "1") as proc:
        head = _recovered(proc, target, report)
        report.unreported.append(head - report.acknowledged)
        assert proc.wait(START_TIMEOUT_S[target]) == 0, proc.output
    return report


def power_cut_loop(
    image: Path,
    disk: Path,
    crashes: int,
    seed: int,
    *,
    socket_dir: Path,
    ignore_flushes: bool = False,
) -> CrashReport:
    """The vm's crash loop on a disk that loses what it was not told to flush.

    The image boots under QEMU (TCG) with its volume on :class:`nbd.CachedDisk`
    over ``disk``, with riad's cache mode. Once the service has recovered, the
    power fails as a seeded write arrives (1 to 300 writes on: mid-transaction,
    mid-journal-commit, mid-checkpoint): QEMU is killed and, of the writes not
    flushed, each reaches ``disk`` with probability one half. ``ignore_flushes``:
    a disk that answers flushes without keeping anything (the negative control).
    """
    import json

    from riad.image.boot import boot_cmdline, qemu_command

    from .nbd import CachedDisk, NbdServer

    rng = random.Random(seed)
    manifest = json.loads((image / "manifest.json").read_text())
    initrd = manifest["initramfs"]["file"]
    report = CrashReport("vm on a disk whose power is cut", seed, "wal")
    cached = CachedDisk(disk, ignore_flushes=ignore_flushes)
    sock = socket_dir / "disk.sock"
    server = NbdServer(cached, sock)
    print(f"power-cut loop: seed {seed}, {crashes} crashes, ignore_flushes={ignore_flushes}")

    def boot(*args: str) -> ServiceProcess:
        command = qemu_command(
            str(image / "kernel"),
            str(image / initrd),
            boot_cmdline([], list(args), "tcg"),
            int(manifest["memory_mb"]),
            tap=None,
            disks=[f"nbd:unix:{sock}"],
            disk_cache="writeback",  # what riad uses where O_DIRECT is refused
        )
        return ServiceProcess(["sh", "-c", 'exec "$@" 1>&2', "sh", *command])

    try:
        for _ in range(crashes):
            with boot() as proc:
                head = _recovered(proc, "vm", report)
                report.heads.append(head)
                if report.crashes:
                    report.unreported.append(head - report.acknowledged)
                report.acknowledged = head
                cached.arm(rng.randint(1, 300))
                assert cached.cut.wait(START_TIMEOUT_S["vm"]), "the service stopped writing"
                proc.proc.kill()
                proc.wait(timeout_s=60)
                lost = cached.power_cut(rng, 0.5)
                seen = [int(n) for n in _COMMITTED.findall(proc.output)]
                report.acknowledged = max([head, *seen])
                report.crashes += 1
                print(f"power cut after commit {report.acknowledged}: {lost} writes lost")
        with boot("--limit", "1") as proc:
            head = _recovered(proc, "vm", report)
            report.unreported.append(head - report.acknowledged)
    finally:
        server.close()
    return report
