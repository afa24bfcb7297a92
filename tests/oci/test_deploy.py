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
