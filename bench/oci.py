"""The oci target's image size and container start to first answer, beside riad run.

Run: .venv/bin/python bench/oci.py [--runs N]

Builds the echo example with ``riad build -t oci --archive``, loads it into a
Podman store of this run's own (runc, cgroupfs, explicit ulimits), then N
times: ``podman run -d`` with the echo port published on 127.0.0.1, and the
time until a line sent to it comes back (connect retried every 10 ms); the
container is removed after each. Beside it, in the same rounds, the same
service started by ``riad run`` on the host's sockets (the unix target), to
the same first answer. Prints the image's layer size, file count and the
median and worst start times of each.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import gzip
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF = '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=512:512"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _first_answer(port: int, started: float, limit_s: float = 60.0) -> float:
    while time.monotonic() - started < limit_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as client:
                client.sendall(b"x\n")
                if client.recv(10) == b"x\n":
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no answer")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="riad-bench-oci-", dir="/tmp"))
    (work / "containers.conf").write_text(CONF)
    os.environ["CONTAINERS_CONF"] = str(work / "containers.conf")
    podman = ["podman", "--root", str(work / "root"), "--runroot", str(work / "run")]
    riad = [sys.executable, "-m", "riad"]
    archive = work / "echo.tar"
    try:
        subprocess.run(
            [*riad, "build", str(REPO / "examples/echo"), "-t", "oci", "--archive", str(archive)],
            check=True,
        )
        with tarfile.open(archive) as tar:
            index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
            manifest = json.load(
                tar.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'][7:]}")  # type: ignore[arg-type]
            )
            layer = manifest["layers"][0]
            blob = tar.extractfile(f"blobs/sha256/{layer['digest'][7:]}")
            assert blob is not None
            data = blob.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as files:
            count = sum(1 for member in files.getmembers() if member.isfile())
        packed = len(gzip.compress(data, mtime=0))
        subprocess.run([*podman, "load", "-q", "-i", str(archive)], check=True)
        container: list[float] = []
        process: list[float] = []
        for _ in range(runs):
            port = _free_port()
            started = time.monotonic()
            engine = ["--runtime", "runc", "--cgroup-manager=cgroupfs", *LIMITS]
            publish = ["--name", "bench-echo", "-p", f"127.0.0.1:{port}:7007"]
            subprocess.run(
                [
                    *podman,
                    "run",
                    "-d",
                    *engine,
                    *publish,
                    "localhost/echo:latest",
                    "--port",
                    "7007",
                ],
                check=True,
                capture_output=True,
            )
            container.append(_first_answer(port, started))
            subprocess.run([*podman, "rm", "-f", "-t", "0", "bench-echo"], capture_output=True)
            port = _free_port()
            started = time.monotonic()
            proc = subprocess.Popen(
                [*riad, "run", str(REPO / "examples/echo"), "--port", str(port)],
                stderr=subprocess.DEVNULL,
            )
            process.append(_first_answer(port, started))
            proc.terminate()
            proc.wait()
        print(
            f"image: 1 layer, {count} files, {layer['size'] / (1 << 20):.1f} MiB, "
            f"{packed / (1 << 20):.1f} MiB gzipped"
        )
        for name, times in (("podman run (oci)", container), ("riad run (unix)", process)):
            print(
                f"{name}: start to first answer median {statistics.median(times) * 1000:.0f} ms, "
                f"worst {max(times) * 1000:.0f} ms ({runs} runs)"
            )
    finally:
        subprocess.run([*podman, "rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run([*podman, "rmi", "-af"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
