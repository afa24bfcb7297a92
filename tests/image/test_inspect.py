"""``riad inspect IMAGE`` says why each module and data file is in an image."""

from __future__ import annotations

from riad.image.inspect import reasons

TABLE = "usr/lib/python3.11/modules.packed"
CSS = "usr/lib/python3.11/django/contrib/admin/static/admin/css/base.css"


def _entry(path: str, why: str, part: str = "packages") -> dict[str, object]:
    return {"path": path, "why": why, "part": part, "size": 1, "sha256": ""}


MANIFEST = {
    "files": [
        _entry(f"{TABLE}:inventory", "service", "service"),
        _entry(f"{TABLE}:fastapi/__init__", "start-up"),
        _entry(f"{TABLE}:fastapi/routing", "start-up"),
        _entry(f"{TABLE}:anyio/_backends/_asyncio", "warm-up"),
        _entry(CSS, "warm-up", "data"),
        _entry(f"{TABLE}:json/tool", "declared", "stdlib"),
        _entry(f"{TABLE}:riad/targets/vm/guest", "riad", "riad"),
        {"path": "usr/bin/python3.11", "part": "interpreter", "size": 1, "sha256": ""},
    ]
}


def test_counts_by_reason_and_names_the_warm_up_and_declared_ones() -> None:
    assert reasons(MANIFEST) == [
        "why",
        "  service    1 modules: the service's own modules",
        "  start-up   2 modules: loaded by the traced start-up",
        "  warm-up    1 modules, 1 data files: loaded or read by the warm-up requests",
        "      anyio._backends._asyncio",
        f"      {CSS}",
        "  declared   1 modules: declared: --include, app.lazy_imports",
        "      json.tool",
        "  riad       1 modules: riad's own (PID 1, its seal, the module table)",
    ]


def test_every_module_on_request_and_old_images_said_so() -> None:
    every = reasons(MANIFEST, every=True)
    assert "      fastapi" in every and "      fastapi.routing" in every
    assert reasons({"files": [{"path": "x", "part": "riad", "size": 1}]}) == [
        "why          (not recorded: built before riad recorded it)"
    ]
