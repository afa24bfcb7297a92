"""What a sealed service imports before its seal: the start-up trace, cached."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from riad.app.loader import load_app
from riad.targets.sandbox import warmup
from riad.targets.sandbox.app_entry import AppOptions
from riad.targets.sandbox.imports import LATE_IMPORTS, plan_imports
from riad.targets.sandbox.warmup import import_modules

from .conftest import needs_linux_x86_64

SERVICE = """\
import riad

app = riad.App("lazy", network=True)
app.lazy_imports("colorsys")


@app.main
async def main(dev: riad.Devices) -> None:
    import lazyhelper  # imported at start-up, not when the module loads

    async with await dev.stack.start_server(lazyhelper.handler, port=7):
        await dev.wait_for_shutdown()
"""

HELPER = """\
async def handler(reader, writer):
    writer.close()
"""


@needs_linux_x86_64
@pytest.mark.skipif(os.geteuid() != 0, reason="the traced start-up makes a TAP: root")
def test_the_trace_finds_start_up_imports_and_is_cached_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIAD_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "lazy"
    folder.mkdir()
    (folder / "service.py").write_text(SERVICE)
    (folder / "lazyhelper.py").write_text(HELPER)
    app = load_app(str(folder))
    options = AppOptions(service=str(folder))
    first = plan_imports(app, options, ["--ipv4", "10.9.0.2/24"])
    assert first.traced and first.error is None
    assert "lazyhelper" in first.modules  # only the running start-up imports it
    assert "riad.stack.stack" in first.modules and "riad.services.http" not in first.modules
    assert "colorsys" in first.modules  # declared
    assert set(LATE_IMPORTS) <= set(first.modules)
    again = plan_imports(app, options, ["--ipv4", "10.9.0.2/24"], include=["wave"])
    assert not again.traced and "wave" in again.modules
    (folder / "lazyhelper.py").write_text(HELPER + "# changed\n")
    assert plan_imports(app, options, ["--ipv4", "10.9.0.2/24"]).traced


def test_import_modules_reports_what_cannot_be_imported() -> None:
    failed = import_modules(["json", "no_such_module_for_riad"])
    assert len(failed) == 1 and failed[0].startswith("no_such_module_for_riad (ModuleNotFoundError")


def test_a_module_that_cannot_run_before_the_seal_is_held_and_imported_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # like a Django models module: it needs what the service's main sets up first
    (tmp_path / "needs_setup.py").write_text(
        "import os\nif 'RIAD_TEST_SET_UP' not in os.environ:\n"
        "    raise RuntimeError('settings are not configured')\nVALUE = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "needs_setup", raising=False)
    try:
        failed = import_modules(["needs_setup"])
        assert failed == [
            "needs_setup (RuntimeError: settings are not configured): held compiled, "
            "imported when the service imports it"
        ]
        (tmp_path / "needs_setup.py").unlink()  # sealed, no file can be read any more
        monkeypatch.setenv("RIAD_TEST_SET_UP", "1")
        module = importlib.import_module("needs_setup")
        assert module.VALUE == 42
        assert module.__file__ == str(tmp_path / "needs_setup.py")
    finally:
        sys.modules.pop("needs_setup", None)
        warmup._held.specs.pop("needs_setup", None)


def test_a_traced_start_up_waits_briefly_for_dns_and_has_no_dhcp() -> None:
    from riad.app.args import TRACE_DNS_WAIT_MS, NetConfig
    from riad.targets.direct import DEFAULT_IPV4, traced_net

    leased = traced_net(NetConfig(dhcp=True, dns=("10.0.0.53",), dns_search=("lab",)))
    assert leased == NetConfig(
        ipv4=DEFAULT_IPV4, dns=("10.0.0.53",), dns_search=("lab",), dns_wait_ms=TRACE_DNS_WAIT_MS
    )
    static = NetConfig(ipv4=DEFAULT_IPV4)
    assert traced_net(static).dns_wait_ms == TRACE_DNS_WAIT_MS


def test_distributions_metadata_is_found_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from riad.targets.sandbox.distributions import HeldDistributions

    expected = importlib.metadata.version("h11")
    held = HeldDistributions()
    monkeypatch.setattr(sys, "meta_path", [held])  # no path finder: nothing is listed
    monkeypatch.setattr(sys, "path", [])
    assert importlib.metadata.version("h11") == expected
    assert importlib.metadata.distribution("H11").metadata["Name"] == "h11"
    assert any(ep.name == "riad" for ep in importlib.metadata.entry_points(group="console_scripts"))
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("no-such-distribution-for-riad")
