"""The link shortener example keeps its links on a volume: across restarts on unix,
sealed in the sandbox, in a vm, and across a rebuild of the vm image."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from riad.image.kernel import build_kernel
from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "shortener")


def shorten_and_follow(base: str, url: str) -> str:
    """POST a link, follow its code; the code."""
    with httpx.Client(base_url=base, timeout=30) as client:
        made = client.post("/links", json={"url": url})
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        hop = client.get(f"/{code}")
        assert (hop.status_code, hop.headers["location"]) == (302, url)
        assert client.post("/links", json={"url": "ftp://x"}).status_code == 422
        assert client.post("/links", content=b"{broken").status_code == 422
        assert client.post("/links", content=b"u" * 20000).status_code == 413
        assert client.get("/nope").status_code == 404
        assert "Shorten a link" in client.get("/").text
    return str(code)


def listed(base: str) -> dict[str, tuple[str, int]]:
    links = httpx.get(f"{base}/links", timeout=30).json()
    return {link["code"]: (link["url"], link["visits"]) for link in links}


def test_links_survive_restarts_on_unix(tmp_path: Path) -> None:
    volume = tmp_path / "links"
    codes = []
    for n in range(3):
        argv = riad_command("run", EXAMPLE, "--port", "0", "--volume", f"data={volume}")
        with ServiceProcess(argv) as proc:
            port = log_field(proc.wait_for("serving links"), "port")
            base = f"http://127.0.0.1:{port}"
            assert set(listed(base)) == set(codes)
            codes.append(shorten_and_follow(base, f"https://example.org/{n}"))
            links = listed(base)
            assert links[codes[-1]] == (f"https://example.org/{n}", 1)
            assert links[codes[0]] == ("https://example.org/0", 1)  # its visit was kept too
            assert proc.stop() == 0


def in_ns(ns: Netns, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *argv], capture_output=True, text=True, timeout=60
    )


def ns_request(ns: Netns, *curl: str) -> str:
    done = in_ns(ns, "curl", "-sS", "--max-time", "30", *curl)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def ns() -> Iterator[Netns]:
    if os.geteuid() != 0:
        pytest.fail("sealed runs of the example need root (namespaces, TAP devices)")
    with Netns.create("riad-short") as namespace:
        yield namespace


def _sealed_round(ns: Netns, argv: list[str], expect: set[str], n: int) -> str:
    """One run: the links so far are there; add one; stop. The new code."""
    with ServiceProcess(["ip", "netns", "exec", ns.name, *argv, "--port", "80"]) as proc:
        proc.wait_for("serving links port=80 volume=/volumes/data", 300)
        base = "http://10.0.0.2"
        links = json.loads(ns_request(ns, f"{base}/links"))
        assert {link["code"] for link in links} == expect
        made = json.loads(
            ns_request(ns, "-X", "POST", "-H", "content-type: application/json",
                       "-d", json.dumps({"url": f"https://example.org/{n}"}), f"{base}/links")
        )  # fmt: skip
        hop = ns_request(ns, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                         f"{base}/{made['code']}")  # fmt: skip
        assert hop == f"302 https://example.org/{n}"
        assert proc.stop() == 0, proc.output
        return str(made["code"])


@pytest.mark.netns
def test_links_survive_restarts_sealed_in_the_sandbox(ns: Netns, tmp_path: Path) -> None:
    argv = riad_command("run", EXAMPLE, "-t", "sandbox", "--volume", f"data={tmp_path / 'v'}")
    codes: set[str] = set()
    for n in range(2):
        codes.add(_sealed_round(ns, argv, set(codes), n))


@pytest.mark.netns
def test_links_survive_restarts_and_rebuilds_in_a_vm(ns: Netns, tmp_path: Path) -> None:
    # the kernel with a block device, built ahead (minutes on a machine without it
    # cached), so each round's wait is for the image and the boot alone
    build_kernel("direct", volume=True)
    disk = tmp_path / "links.ext4"
    codes: set[str] = set()
    for n, build in enumerate([(), (), ("--docstrings",)]):  # the last boots another image
        argv = riad_command("run", EXAMPLE, "-t", "vm", "--accel", "tcg", *build,
                            "--volume", f"data={disk}")  # fmt: skip
        console = ["sh", "-c", 'exec "$@" 1>&2', "sh"]  # the vm's console is on standard output
        codes.add(_sealed_round(ns, [*console, *argv], set(codes), n))
