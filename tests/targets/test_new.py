"""``riad new NAME && riad run NAME`` from a fresh virtual environment.

The venv gets riad installed from this checkout (no editable link), so the
templates must ship inside the package and the generated service must run
with nothing but what ``pip install riad`` gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from riad.templates import TEMPLATES, create_service, template_source
from riad.testing.process import ServiceProcess, log_field

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh_riad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``riad`` script of a new venv with riad installed from this checkout."""
    source = tmp_path_factory.mktemp("source")  # a copy: the build leaves nothing here
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env_dir / "bin" / "riad"


def test_new_then_run_hello(fresh_riad: Path, tmp_path: Path) -> None:
    created = subprocess.run(
        [str(fresh_riad), "new", "myservice"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "riad run myservice" in created.stdout
    assert (tmp_path / "myservice" / "service.py").is_file()
    argv = [str(fresh_riad), "run", "myservice", "--count", "2", "--interval", "0"]
    with ServiceProcess(argv, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""}) as proc:
        assert proc.wait() == 0
    assert [log_field(line, "n") for line in proc.lines if "app: hello" in line] == ["1", "2"]


def test_new_echo_template_serves(fresh_riad: Path, tmp_path: Path) -> None:
    subprocess.run(
        [str(fresh_riad), "new", "pong", "--template", "echo"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    argv = [str(fresh_riad), "run", "pong", "--port", "0"]
    with ServiceProcess(argv, cwd=tmp_path) as proc:
        port = log_field(proc.wait_for("listening"), "port")
        echoed = subprocess.run(
            ["nc", "-N", "127.0.0.1", port], input=b"marco\n", capture_output=True, timeout=30
        )
        assert echoed.stdout == b"marco\n"
        assert proc.stop() == 0


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    create_service("one", "hello", where=tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "riad", "new", "one"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "already exists: pick another name or remove it" in result.stderr


def test_new_rejects_bad_names(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "riad", "new", "My Service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "use lowercase letters" in result.stderr


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_templates_are_renamed(template: str, tmp_path: Path) -> None:
    path = create_service("renamed", template, where=tmp_path)
    text = path.read_text()
    assert 'riad.App("renamed"' in text and "template-name" not in text
    assert template_source(template).count("template-name") >= 2
