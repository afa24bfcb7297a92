"""Headless Chromium opens the chat page, whose script talks to the Starlette
WebSocket endpoint through riad; the echoed messages are on the screen."""

from __future__ import annotations

from tests.http.harness import serve

from .browser import Browser, check_chat_page
from .chat.main import app


def test_chromium_shows_the_echoed_messages() -> None:
    with serve(app) as served, Browser() as browser:
        check_chat_page(browser, f"http://127.0.0.1:{served.port}/")
