"""Warm-up requests sent through a traced service: what they import and read is recorded."""

from __future__ import annotations

import sys
from pathlib import Path

from riad.image.trace import trace_startup

WARMED = Path(__file__).resolve().parent / "warmed"


def test_warm_up_requests_go_through_the_traced_service() -> None:
    trace = trace_startup(
        ["riad.targets.vm.guest:trace_entry", "socket", "service:app", "--port", "8000"],
        path=[str(WARMED), *sys.path],
        warmup=["GET /hello", "GET /colour"],
        as_image=True,
    )
    assert trace.error is None, trace.error
    assert trace.reason == "warmed up", trace.output
    # the web service's own "GET /" first, then the ones given
    assert trace.warmup == ("GET / -> 200", "GET /hello -> 200", "GET /colour -> 200")
    assert "colorsys" in trace.modules and trace.why("colorsys") == "warm-up"
    assert trace.why("asyncio") == "start-up" and trace.why("riad.image.idle") == "riad"
    greeting = str(WARMED / "greeting.txt")
    assert greeting in trace.opened and trace.opened_why(greeting) == "warm-up"


def test_a_declared_module_is_told_apart() -> None:
    trace = trace_startup(
        ["riad.targets.vm.guest:trace_entry", "socket", "service:app", "--port", "8000"],
        path=[str(WARMED), *sys.path],
        declared=["colorsys"],
        as_image=True,
    )
    # a web service always has its "GET /"
    assert trace.reason == "warmed up" and trace.warmup == ("GET / -> 200",)
    assert trace.why("colorsys") == "declared"
