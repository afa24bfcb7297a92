"""A vm image run with ``--dns``/``--dns-search``/``--hosts`` is traced with them.

``riad run -t vm`` builds its image without the run's boot arguments (one image
serves every run); the start-up trace still runs the service with the run's
resolver arguments, so a service that looks a name up in ``main`` resolves it
there as it will at boot instead of failing (and logging an error) for want of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from riad.targets.target import RunRequest
from riad.targets.vm.build import resolve_service, trace_service
from riad.targets.vm.target import build_options

APPS = Path(__file__).resolve().parent / "apps"
BOOT = ("--ipv4", "10.9.0.2/24", "--hosts", "db=10.9.0.7", "--port", "80", "--dns", "10.9.0.53")


def test_a_run_s_resolver_arguments_go_to_the_trace_only() -> None:
    request = RunRequest(service=str(APPS / "resolves.py"), boot_args=BOOT)
    cached = build_options(request, with_boot_args=False)
    assert cached.boot_args == ()
    assert cached.trace_args == ("--hosts=db=10.9.0.7", "--dns=10.9.0.53")
    built = build_options(request, with_boot_args=True)
    assert built.boot_args == BOOT and built.trace_args == ()


@pytest.mark.netns  # the build's trace runs in a namespace of its own
def test_a_name_looked_up_at_start_up_resolves_in_the_trace() -> None:
    request = RunRequest(service=str(APPS / "resolves.py"), boot_args=BOOT)
    options = build_options(request, with_boot_args=False)
    trace = trace_service(resolve_service(request.service), options)
    assert trace.error is None, trace.output
    assert "address=10.9.0.7" in trace.output, trace.output
    assert "ERROR" not in trace.output
