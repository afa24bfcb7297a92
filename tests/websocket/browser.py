"""Headless Chromium driven through the Chrome DevTools protocol (over a WebSocket,
with Python's ``websockets`` client): load a page, wait for it to reach a state,
evaluate JavaScript, take a screenshot.

Chromium runs with the flags this machine needs (no sandbox, no GPU, no QUIC,
nothing fetched in the background) and a fresh profile, and is ended by its PID.
Given a network namespace, it runs inside it (``ip netns exec``) and its DevTools
socket is opened from inside too: it reaches only that namespace's addresses.
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
from riad.testing.netns import Netns
from tests.examples.png import decode_png

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
    """One Chromium with one page; ``extra`` flags are added to ``FLAGS``; inside
    ``netns`` when given."""

    def __init__(self, extra: list[str] | None = None, netns: Netns | None = None) -> None:
        chromium = shutil.which("chromium")
        assert chromium is not None, "chromium is missing: run scripts/system-deps as root"
        self._profile = tempfile.TemporaryDirectory(
            prefix="riad-chromium-", ignore_cleanup_errors=True
        )
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        inside = ["ip", "netns", "exec", netns.name] if netns is not None else []
        self.proc = subprocess.Popen(
            [*inside, chromium, *FLAGS, *(extra or []), f"--user-data-dir={self._profile.name}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes in a group of its own
        )  # fmt: skip
        self._exits = contextlib.ExitStack()
        self._ids = itertools.count(1)
        try:
            self._ws = self._attach(port_file, netns)
        except BaseException:
            self.close()
            raise

    def _attach(self, port_file: Path, netns: Netns | None) -> ClientConnection:
        eventually(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1,
                   what="Chromium's DevTools port")  # fmt: skip
        port = int(port_file.read_text().split()[0])

        def pages() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                return [t for t in json.load(answer) if t["type"] == "page"]

        # (sockets opened in the namespace stay in it once this thread leaves)
        with netns.entered() if netns is not None else contextlib.nullcontext():
            page = eventually(pages, what="Chromium's page")[0]
            return self._exits.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))

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


DONE = (20, 160, 90)
"""The chat page's background once every echo came back."""


def check_chat_page(browser: Browser, url: str) -> None:
    """Open the chat page (``tests/websocket/chat``) at ``url``: its WebSocket's three
    echoes are shown, with the subprotocol chosen, and the screenshot has turned green
    with text drawn on it (``RIAD_SCREENSHOT`` names a file to keep it in)."""
    browser.open(url)
    title = browser.wait_for(
        "document.title.startsWith('done') && document.title", "the echoes shown"
    )
    assert title == "done chat", title  # the subprotocol the endpoint chose
    shown = browser.evaluate("document.getElementById('log').innerText")
    assert shown.split("\n") == ["echo: one", "echo: two", "echo: three"], shown
    png = browser.screenshot()
    if out := os.environ.get("RIAD_SCREENSHOT"):
        Path(out).write_bytes(png)
    width, height, rows = decode_png(png)
    pixels = [rows[y][x * 3 : x * 3 + 3] for y in range(0, height, 4) for x in range(0, width, 4)]
    done = sum(p == bytes(DONE) for p in pixels)
    assert done > len(pixels) // 2, "the page did not turn green: the echoes did not arrive"
    assert any(p == b"\xff\xff\xff" for p in pixels), "no text drawn"


def check_static_site(browser: Browser, url: str, protocol: str) -> None:
    """Open the static website's home page (``examples/static-site``) at ``url``: the
    page, its style sheet and its images all came over ``protocol`` (the browser's
    ``nextHopProtocol``: ``h2``, ``http/1.1``), and the banner decoded."""
    browser.open(url)
    browser.wait_for(
        "document.readyState === 'complete' && document.images.length > 0"
        " && [...document.images].every(i => i.complete)",
        "the page and its images loaded",
    )
    protocols = browser.evaluate(
        "[performance.getEntriesByType('navigation')[0].nextHopProtocol,"
        " ...performance.getEntriesByType('resource').map(r => r.nextHopProtocol)]"
    )
    resources = browser.evaluate("performance.getEntriesByType('resource').map(r => r.name)")
    assert len(protocols) >= 3, (protocols, resources)  # the page, its style sheet, images
    assert set(protocols) == {protocol}, (protocols, resources)
    assert browser.evaluate("document.querySelector('img.banner').naturalWidth") > 0
