"""riad deploy kubernetes and riad build -t oci: mistakes get one line naming the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from riad.testing.process import riad_command

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "kubernetes", "examples/hello"], "has no network"),
        (
            ["deploy", "kubernetes", "examples/echo", "--health-port", "7"],
            "--health-port 7 is the service's own port",
        ),
        (["build", "examples/echo", "-t", "oci"], "give -o DIR"),
    ],
)
def test_mistakes_say_what_to_fix(args: list[str], message: str) -> None:
    done = subprocess.run(riad_command(*args), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_start_up_that_fails_is_said_and_nothing_is_written(tmp_path: Path) -> None:
    """The memory request is measured from a traced start-up: one that fails stops the
    manifests, saying why."""
    (tmp_path / "service.py").write_text(
        "import riad\n"
        "app = riad.App('broken', network=True)\n"
        "@app.main\n"
        "async def main(dev):\n"
        "    raise RuntimeError('no database configured')\n"
    )
    out = tmp_path / "broken.yaml"
    done = subprocess.run(
        riad_command("deploy", "kubernetes", str(tmp_path), "-o", str(out)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "failed while its memory was measured" in done.stderr, done.stderr
    assert "no database configured" in done.stderr
    assert not out.exists()
