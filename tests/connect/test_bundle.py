"""A vm image carries certifi's CA bundle when, and only when, the service makes a TLS client.

``riad build`` traces each service's start-up; the bundle a client context
loads is among the files the trace records, and is packed beside certifi.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from riad.testing.process import riad_command

APPS = Path(__file__).resolve().parent / "apps"
BUNDLE = "certifi/cacert.pem"


def built_files(service: str, out: Path) -> list[str]:
    done = subprocess.run(
        riad_command("build", str(APPS / service), "-t", "vm", "-o", str(out)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    return [str(entry["path"]) for entry in manifest["files"]]


@pytest.mark.netns  # the build's trace runs in a namespace of its own
def test_the_bundle_is_carried_only_by_a_service_that_is_a_tls_client(tmp_path: Path) -> None:
    with_client = built_files("verified.py", tmp_path / "verified")
    assert any(path.endswith(BUNDLE) for path in with_client), with_client
    without = built_files("plain.py", tmp_path / "plain")
    assert not any(path.endswith(BUNDLE) for path in without)
    assert not any("ca-certificates" in path for path in without)


@pytest.mark.netns
@pytest.mark.parametrize("target", ["sandbox", "vm"])
def test_a_sealed_service_trusts_the_bundle_it_carried(target: str) -> None:
    from riad.testing.netns import Netns
    from riad.testing.process import ServiceProcess, log_field

    options = ("-t", "sandbox") if target == "sandbox" else ("-t", "vm", "--accel", "tcg")
    argv = riad_command("run", str(APPS / "verified.py"), *options)
    with Netns.create("riad-bundle") as ns:
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
        with ServiceProcess(argv, cwd=APPS) as proc:
            trusted = int(log_field(proc.wait_for("app: trusting cas=", 900), "cas"))
            assert trusted > 100  # certifi's bundle, read by OpenSSL in the sealed service
            assert proc.stop() == 0
