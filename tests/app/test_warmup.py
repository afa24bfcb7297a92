"""Warm-up requests as a service declares them (``App.warmup``, ``--warmup``)."""

from __future__ import annotations

import pytest

from riad.app import App
from riad.app.warmup import WarmupClient, WarmupRequest, decode, encode, parse_warmup
from riad.app.web import web_service


def exercise(base_url: str) -> None:
    """A client function riad could call (by name) with the service's base URL."""


def test_requests_with_and_without_a_body() -> None:
    assert parse_warmup("GET /") == WarmupRequest("GET", "/")
    assert parse_warmup("  DELETE /items/1?force=yes ") == WarmupRequest(
        "DELETE", "/items/1?force=yes"
    )
    made = parse_warmup('POST /items json={"name": "tea", "price": 2.5}', {"x-key": "s"})
    assert made == WarmupRequest(
        "POST", "/items", '{"name": "tea", "price": 2.5}', "application/json", (("x-key", "s"),)
    )
    form = parse_warmup("POST /login form=user=ada&pw=x")
    assert isinstance(form, WarmupRequest) and form.body == "user=ada&pw=x"
    assert form.content_type == "application/x-www-form-urlencoded"
    assert parse_warmup("PUT /note body=a few words").body == "a few words"  # type: ignore[union-attr]


def test_clients_by_name_or_by_function() -> None:
    assert parse_warmup("tests.app.test_warmup:exercise") == WarmupClient(
        "tests.app.test_warmup:exercise"
    )
    assert parse_warmup(exercise) == WarmupClient("tests.app.test_warmup:exercise")
    with pytest.raises(ValueError, match="defined at the top of a module"):
        parse_warmup(lambda url: None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("FETCH /", "write a request as 'METHOD /path'"),
        ("GET items", "must start with /"),
        ("POST /items {}", "give json=..., form=... or body=..."),
        ("POST /items json={oops", "json= is not JSON"),
        ("not a client:", "write a request"),
    ],
)
def test_mistakes_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_warmup(text)


def test_bad_header_is_refused() -> None:
    with pytest.raises(ValueError, match="one-line value"):
        parse_warmup("GET /", {"x-bad": "two\nlines"})


def test_encode_and_decode_round_trip() -> None:
    for item in (
        parse_warmup('POST /a json={"k": "v w"}', {"h": "1", "i": "2"}),
        parse_warmup("GET /b"),
        parse_warmup("tests.app.test_warmup:exercise"),
    ):
        assert decode(encode(item)) == item


def test_an_app_declares_warm_ups_and_a_web_service_has_its_first() -> None:
    app = App("svc", network=True)
    app.warmup("GET /a", exercise, headers={"x": "y"}, port=9000)
    assert [str(w) for w in app.warmups] == ["GET /a", "tests.app.test_warmup:exercise"]
    assert app.warmup_port == 9000
    with pytest.raises(ValueError):
        app.warmup("GET nowhere")

    async def asgi(scope: object, receive: object, send: object) -> None: ...

    service = web_service(asgi, interface="asgi")
    assert [str(w) for w in service.warmups] == ["GET /"]
    assert service.threads > 0  # an ASGI framework runs sync code in threads


def test_threads_are_declared_within_bounds() -> None:
    assert App("svc").threads == 0
    assert App("svc", threads=8).threads == 8
    with pytest.raises(ValueError, match="threads=-1"):
        App("svc", threads=-1)
