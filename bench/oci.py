"""The oci target's image size and container start to first answer, beside a slim image.

Run (as root): .venv/bin/python bench/oci.py [--runs N]

Builds the echo example with ``riad build -t oci --archive`` and, as the
reference, a ``python:3.11-slim``-like image made here: a minimal Debian root
(``debootstrap --variant=minbase --include=python3``, bench/boot.py's, made
once) with riad and its dependencies pip-installed and the echo service at
``/srv/echo``, run by ``python3 -m riad run`` as user 65534 (``podman import``).
Both load into a Podman store of this run's own (runc, cgroupfs, explicit
ulimits); then N rounds, interleaved: each image's ``podman run -d`` with the
echo port published on 127.0.0.1, and the time until a line sent to it comes
back (connect retried every 10 ms), the container removed after each; and the
same service started by ``riad run`` on the host's sockets. Prints each
image's size (its layer, gzipped, and as Podman stores it), the vm image's
(``riad build -t vm``: kernel and initramfs), the median and worst start
times of each, and how many modules riad's entry imported before its seal and
how long that took (its log says, timed in the container).
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
import re
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


def _bench_boot() -> object:
    """bench/boot.py as a module (the bench folder stays off the path: its http.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("riad_bench_boot", REPO / "bench/boot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _slim_image(work: Path, podman: list[str]) -> int:
    """The python:3.11-slim-like image of echo, imported into Podman; its tar's bytes."""
    from riad.image.kernel import cache_root

    root = cache_root() / "bench" / "debian-root"
    if not _bench_boot().debootstrap_root(root):  # type: ignore[attr-defined]
        raise SystemExit("debootstrap failed")
    packages = work / "packages"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--target", str(packages), str(REPO)]
    subprocess.run(pip, check=True)
    shutil.rmtree(packages / "bin", ignore_errors=True)
    image = work / "slim.tar"
    with tarfile.open(image, "w") as tar:
        tar.add(root, ".")
        for package in sorted(packages.iterdir()):  # the folder itself is in the root
            tar.add(package, f"usr/local/lib/python3.11/dist-packages/{package.name}")
        tar.add(REPO / "examples/echo", "srv/echo")
    changes = [
        "--change",
        'ENTRYPOINT ["/usr/bin/python3", "-m", "riad", "run", "/srv/echo"]',
        "--change",
        "USER 65534:65534",
    ]
    imported = [*podman, "import", "-q", *changes, str(image), "localhost/echo-slim:latest"]
    subprocess.run(imported, check=True)
    return image.stat().st_size


def _stored(podman: list[str], image: str) -> int:
    done = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


SEALED = re.compile(r"sealed in the container \((\d+) modules imported first, (\d+) ms\)")


def _container_start(
    podman: list[str], image: str, port: int, imports: list[tuple[int, float]] | None = None
) -> float:
    """Seconds from ``podman run`` to the first line echoed; for riad's image, what its
    entry imported before the seal (modules, seconds) is added to ``imports``."""
    started = time.monotonic()
    engine = ["--runtime", "runc", "--cgroup-manager=cgroupfs", *LIMITS]
    publish = ["--name", "bench-echo", "-p", f"127.0.0.1:{port}:7007"]
    run = [*podman, "run", "-d", *engine, *publish, image, "--port", "7007"]
    subprocess.run(run, check=True, capture_output=True)
    try:
        took = _first_answer(port, started)
        if imports is not None:
            logs = subprocess.run([*podman, "logs", "bench-echo"], capture_output=True, text=True)
            found = SEALED.search(logs.stdout + logs.stderr)
            if found is None:
                raise RuntimeError(f"riad's container did not say it sealed: {logs.stderr}")
            imports.append((int(found.group(1)), int(found.group(2)) / 1000))
        return took
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "0", "bench-echo"], capture_output=True)


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
        slim_tar = _slim_image(work, podman)
        slim_packed = len(gzip.compress((work / "slim.tar").read_bytes(), mtime=0))
        vm = work / "vm"
        subprocess.run(
            [*riad, "build", str(REPO / "examples/echo"), "-t", "vm", "-o", str(vm)], check=True
        )
        vm_bytes = sum(f.stat().st_size for f in vm.iterdir() if f.name != "manifest.json")
        times: dict[str, list[float]] = {"oci": [], "slim": [], "unix": []}
        imports: list[tuple[int, float]] = []
        for _ in range(runs):
            times["oci"].append(
                _container_start(podman, "localhost/echo:latest", _free_port(), imports)
            )
            times["slim"].append(
                _container_start(podman, "localhost/echo-slim:latest", _free_port())
            )
            port = _free_port()
            started = time.monotonic()
            proc = subprocess.Popen(
                [*riad, "run", str(REPO / "examples/echo"), "--port", str(port)],
                stderr=subprocess.DEVNULL,
            )
            times["unix"].append(_first_answer(port, started))
            proc.terminate()
            proc.wait()
        mib = 1 << 20
        oci_stored = _stored(podman, "localhost/echo:latest")
        slim_stored = _stored(podman, "localhost/echo-slim:latest")
        print(
            f"riad oci image: 1 layer, {count} files, {layer['size'] / mib:.1f} MiB, "
            f"{packed / mib:.1f} MiB gzipped, {oci_stored / mib:.1f} MiB in Podman's store"
        )
        print(
            f"slim image: {slim_tar / mib:.1f} MiB, {slim_packed / mib:.1f} MiB gzipped, "
            f"{slim_stored / mib:.1f} MiB in Podman's store "
            f"(riad's: {layer['size'] / slim_tar:.3f}x, gzipped {packed / slim_packed:.3f}x)"
        )
        print(f"riad vm image (kernel and initramfs): {vm_bytes / mib:.1f} MiB")
        names = {"oci": "podman run (riad oci)", "slim": "podman run (slim)", "unix": "riad run"}
        slim_median = statistics.median(times["slim"])
        for key, name in names.items():
            median = statistics.median(times[key])
            print(
                f"{name}: start to first answer median {median * 1000:.0f} ms, "
                f"worst {max(times[key]) * 1000:.0f} ms ({runs} runs; "
                f"{median / slim_median:.2f}x the slim image's)"
            )
        print(
            f"riad's entry imported {imports[0][0]} modules before the seal, median "
            f"{statistics.median(t for _, t in imports) * 1000:.0f} ms (timed in the container)"
        )
    finally:
        subprocess.run([*podman, "rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run([*podman, "rmi", "-af"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
