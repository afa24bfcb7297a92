"""Headless Chromium opens the chat page, whose script talks to the Starlette
WebSocket endpoint through riad; the echoed messages are on the screen."""

from __future__ import annotations

import os
from pathlib import Path

from tests.examples.png import decode_png
from tests.http.harness import serve

from .browser import Browser
from .chat.main import app

DONE = (20, 160, 90)  # the page's background once every echo came back


def test_chromium_shows_the_echoed_messages() -> None:
    with serve(app) as served, Browser() as browser:
        browser.open(f"http://127.0.0.1:{served.port}/")
        title = browser.wait_for(
            "document.title.startsWith('done') && document.title", "the echoes shown"
        )
        assert title == "done chat"  # the subprotocol the endpoint chose
        shown = browser.evaluate("document.getElementById('log').innerText")
        assert shown.split("\n") == ["echo: one", "echo: two", "echo: three"]
        png = browser.screenshot()
        if out := os.environ.get("RIAD_SCREENSHOT"):
            Path(out).write_bytes(png)
        width, height, rows = decode_png(png)
    pixels = [rows[y][x * 3 : x * 3 + 3] for y in range(0, height, 4) for x in range(0, width, 4)]
    done = sum(p == bytes(DONE) for p in pixels)
    assert done > len(pixels) // 2, "the page did not turn green: the echoes did not arrive"
    assert any(p == b"\xff\xff\xff" for p in pixels), "no text drawn"
