"""Forwarded headers from trusted proxies only, and --root-path (riad.app.web)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from riad.app.web import ProxyHeaders, TrustedProxies, with_root_path


def seen_scope(app_wrapper: Any, scope: dict[str, Any]) -> dict[str, Any]:
    """The scope the application behind ``app_wrapper(inner)`` receives."""
    got: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(scope)

    asyncio.run(app_wrapper(inner)(scope, None, None))
    return got[0]


def request(client: str, *headers: tuple[str, str], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": (client, 5000),
        "path": "/x",
        "raw_path": b"/x",
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def through(trusted: str, scope: dict[str, Any]) -> dict[str, Any]:
    return seen_scope(lambda inner: ProxyHeaders(inner, TrustedProxies(trusted)), scope)


def test_a_trusted_proxy_names_the_client_and_the_scheme() -> None:
    scope = through(
        "127.0.0.1",
        request("127.0.0.1", ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")),
    )
    assert scope["client"] == ("203.0.113.7", 0) and scope["scheme"] == "https"


def test_an_untrusted_peer_changes_nothing() -> None:
    original = request(
        "198.51.100.9", ("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")
    )
    scope = through("127.0.0.1", original)
    assert scope["client"] == ("198.51.100.9", 5000) and scope["scheme"] == "http"


def test_the_chain_is_read_from_the_nearest_proxy() -> None:
    # the client claims 6.6.6.6 itself; the first proxy (10.0.0.5) saw 203.0.113.7
    chain = "6.6.6.6, 203.0.113.7, 10.0.0.5"
    scope = through("127.0.0.1,10.0.0.0/8", request("127.0.0.1", ("x-forwarded-for", chain)))
    assert scope["client"] == ("203.0.113.7", 0)
    everyone = through("*", request("127.0.0.1", ("x-forwarded-for", chain)))
    assert everyone["client"] == ("6.6.6.6", 0)  # all trusted: the farthest one


def test_rfc7239_forwarded_is_read_first() -> None:
    scope = through(
        "127.0.0.1",
        request(
            "127.0.0.1",
            ("forwarded", 'for="[2001:db8::17]:4711";proto=https;by=10.0.0.1, for=127.0.0.1'),
            ("x-forwarded-for", "9.9.9.9"),
        ),
    )
    assert scope["client"] == ("2001:db8::17", 0) and scope["scheme"] == "https"
    websocket = through(
        "127.0.0.1",
        request("127.0.0.1", ("forwarded", "for=1.2.3.4;proto=https"), kind="websocket"),
    )
    assert websocket["scheme"] == "wss"


def test_nonsense_in_the_headers_changes_nothing_it_should_not() -> None:
    scope = through(
        "127.0.0.1",
        request(
            "127.0.0.1",
            ("forwarded", 'for="unterminated;proto=gopher'),
            ("x-forwarded-proto", "gopher"),
        ),
    )
    assert scope["scheme"] == "http"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8,::1")
    assert "10.200.1.1" in trusted and "::1" in trusted and "11.0.0.1" not in trusted
    assert "not-an-address" not in trusted
    with pytest.raises(ValueError, match="'nope' is not an IP address or network"):
        TrustedProxies("127.0.0.1,nope")


def test_root_path_is_put_back_in_front_of_the_path() -> None:
    scope = seen_scope(lambda inner: with_root_path(inner, "/api/"), request("127.0.0.1"))
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/api", "/api/x", b"/api/x")
    untouched = request("127.0.0.1")
    assert seen_scope(lambda inner: with_root_path(inner, ""), untouched) == untouched
