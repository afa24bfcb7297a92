"""Headless Chromium driven through the Chrome DevTools protocol (over a WebSocket,
with Python's ``websockets`` client): load a page, wait for it to reach a state,
evaluate JavaScript, take a screenshot.

Chromium runs with the flags this machine needs (no sandbox, no GPU, no QUIC,
nothing fetched in the background) and a fresh profile, and is ended by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from riad.testing import eventually

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=800,600",
    "--force-device-scale-factor=1",
]


class Browser:
    """One Chromium with one page; ``extra`` flags are added to ``FLAGS``."""

    def __init__(self, extra: list[str] | None = None) -> None:
        chromium = shutil.which("chromium")
        assert chromium is not None, "chromium is missing: run scripts/system-deps as root"
        self._profile = tempfile.TemporaryDirectory(
            prefix="riad-chromium-", ignore_cleanup_errors=True
        )
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        self.proc = subprocess.Popen(
            [chromium, *FLAGS, *(extra or []), f"--user-data-dir={self._profile.name}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes in a group of its own
        )  # fmt: skip
        eventually(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1,
                   what="Chromium's DevTools port")  # fmt: skip
        port = int(port_file.read_text().split()[0])

        def pages() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                return [t for t in json.load(answer) if t["type"] == "page"]

        page = eventually(pages, what="Chromium's page")[0]
        self._exits = contextlib.ExitStack()
        self._ws: ClientConnection = self._exits.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None)
        )
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events in between are skipped)."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(120))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Evaluate ``expression`` until it is truthy (``eventually``); its value."""

        def value() -> Any:
            try:
                return self.evaluate(expression)
            except RuntimeError:  # no page context yet (still navigating)
                return None

        return eventually(value, what=what)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            self._exits.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
            with contextlib.suppress(ProcessLookupError):  # helpers left in its group
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
