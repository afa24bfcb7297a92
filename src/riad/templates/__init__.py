"""Skeletons for ``riad new``: each template is a working service module.

A template is an ordinary, type-checked module of this package whose service
is named ``TEMPLATE_NAME``; ``create_service`` copies it to
``NAME/service.py`` with that name replaced by ``NAME``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from riad.app.args import ConfigError

__all__ = ["TEMPLATES", "TEMPLATE_NAME", "create_service"]

TEMPLATE_NAME = "template-name"

TEMPLATES: dict[str, str] = {
    "hello": "logs a greeting every second, --count times (no network)",
    "echo": "a TCP echo server on --port",
}

_NAME = re.compile(r"[a-z][a-z0-9]*([-_][a-z0-9]+)*\Z")


def template_source(template: str) -> str:
    """The text of ``template`` as shipped."""
    if template not in TEMPLATES:
        raise ConfigError(f"no template {template!r}: choose one of {', '.join(sorted(TEMPLATES))}")
    return (resources.files(__name__) / f"{template}.py").read_text(encoding="utf-8")


def create_service(name: str, template: str = "hello", where: Path | None = None) -> Path:
    """Create ``where/name/service.py`` from ``template``; return the file's path."""
    if not _NAME.match(name):
        raise ConfigError(
            f"service name {name!r}: use lowercase letters, digits, '-' and '_', "
            "starting with a letter (e.g. riad new my-service)"
        )
    source = template_source(template)
    folder = (where or Path.cwd()) / name
    target = folder / "service.py"
    if target.exists():
        raise ConfigError(f"{target} already exists: pick another name or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(source.replace(TEMPLATE_NAME, name), encoding="utf-8")
    return target
