"""The namespace kit leaves no namespace behind: a creator killed before its
``close()`` has its empty namespaces deleted by the next ``Netns.create`` (those a
process is still in stay), a ``create`` cut short deletes what it made, and a
``close()`` that could not delete says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from riad.testing import eventually
from riad.testing import netns as kit
from riad.testing.netns import Netns, NetnsError, sweep_leaked

pytestmark = pytest.mark.netns

KILLED_CREATOR = (
    "import os, signal\n"
    "from riad.testing.netns import Netns\n"
    "ns = Netns.create('riad-killed')\n"
    "print(ns.name, flush=True)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def _made_by_a_killed_process() -> str:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_CREATOR], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr
    name = done.stdout.strip()
    assert name.startswith("riad-killed-") and _exists(name), (name, done.stderr)
    return name


def test_the_namespace_of_a_killed_creator_goes_with_the_next_create() -> None:
    leaked = _made_by_a_killed_process()
    try:
        with Netns.create("riad-next") as ns:
            assert not _exists(leaked)
            assert _exists(ns.name)  # (its own stays while its creator lives)
        assert not _exists(ns.name)
    finally:
        if _exists(leaked):
            subprocess.run(["ip", "netns", "del", leaked], check=False)


def test_a_namespace_a_process_is_still_in_stays_until_it_leaves() -> None:
    leaked = _made_by_a_killed_process()
    inside = subprocess.Popen(["ip", "netns", "exec", leaked, "sleep", "600"])
    try:
        eventually(
            lambda: subprocess.run(
                ["ip", "netns", "pids", leaked], capture_output=True, check=True
            ).stdout.strip(),
            what="sleep inside the namespace",
        )
        assert leaked not in sweep_leaked()
        assert _exists(leaked)
    finally:
        inside.kill()
        inside.wait()
    try:
        assert leaked in sweep_leaked()
        assert not _exists(leaked)
    finally:
        if _exists(leaked):
            subprocess.run(["ip", "netns", "del", leaked], check=False)


def test_a_create_cut_short_deletes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_ip = kit._ip

    def ip_that_times_out(*args: str) -> str:
        out = real_ip(*args)
        if args[:2] == ("netns", "add"):
            made.append(args[2])
            raise subprocess.TimeoutExpired(["ip", *args], 30)
        return out

    monkeypatch.setattr(kit, "_ip", ip_that_times_out)
    with pytest.raises(subprocess.TimeoutExpired):
        Netns.create("riad-cut")
    assert made and not _exists(made[0])


def test_a_close_that_could_not_delete_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = Netns.create("riad-stays")
    real_run = subprocess.run

    def refusing(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        if argv[:3] == ["ip", "netns", "del"]:
            return subprocess.CompletedProcess(argv, 1, b"", b"busy")
        return real_run(argv, **kwargs)  # type: ignore[call-overload, no-any-return]

    try:
        monkeypatch.setattr(kit.subprocess, "run", refusing)
        with pytest.raises(NetnsError, match="left it in place: busy"):
            ns.close()
        monkeypatch.undo()
        assert _exists(ns.name)
    finally:
        ns.close()  # (not marked closed by the failure: this one deletes it)
    assert not _exists(ns.name)
