"""Podman with a store and a configuration of a test's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=512:512"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@contextlib.contextmanager
def private_podman(folder: Path) -> Iterator[list[str]]:
    """The ``podman`` command with its store in ``folder`` and the test's containers.conf
    (runc, cgroupfs, explicit ulimits); its containers and images removed at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "containers.conf"
    conf.write_text(CONF)
    previous = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    run = tempfile.mkdtemp(prefix="riad-oci-", dir="/tmp")  # podman: at most 50 characters
    command = ["podman", "--root", str(folder / "root"), "--runroot", run]
    command += ["--cgroup-manager=cgroupfs", "--runtime", "runc"]
    try:
        yield command
    finally:
        subprocess.run([*command, "rm", "-af", "-t", "0"], capture_output=True, check=False)
        subprocess.run([*command, "rmi", "-af"], capture_output=True, check=False)
        shutil.rmtree(run, ignore_errors=True)
        if previous is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = previous
