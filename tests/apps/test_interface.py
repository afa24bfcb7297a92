"""Telling ASGI from WSGI applications, and finding the service in a module."""

from __future__ import annotations

import functools
from typing import Any

import falcon
import falcon.asgi
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette

import riad
from riad.app.args import ConfigError
from riad.app.model import find_app
from riad.app.web import interface_of, service_name


async def asgi_function(scope: Any, receive: Any, send: Any) -> None: ...


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


class AsgiClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...


class SyncAsgiWrapper:
    """A middleware whose ``__call__`` returns the coroutine of the application it wraps."""

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return asgi_function(scope, receive, send)


@pytest.mark.parametrize(
    ("application", "kind"),
    [
        (FastAPI(), "asgi"),
        (Starlette(), "asgi"),
        (falcon.asgi.App(), "asgi"),
        (object.__new__(ASGIHandler), "asgi"),  # what get_asgi_application() returns
        (asgi_function, "asgi"),
        (AsgiClass(), "asgi"),
        (SyncAsgiWrapper(), "asgi"),
        (functools.partial(lambda extra, scope, receive, send: None, 1), "asgi"),
        (Flask(__name__), "wsgi"),
        (Flask(__name__).wsgi_app, "wsgi"),
        (falcon.App(), "wsgi"),
        (object.__new__(WSGIHandler), "wsgi"),  # what get_wsgi_application() returns
        (wsgi_function, "wsgi"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_frameworks_and_plain_callables_are_told_apart(application: object, kind: str) -> None:
    assert interface_of(application) == kind


def either(*args: Any) -> None: ...


def maybe_three(a: Any, b: Any, c: Any = None) -> None: ...


async def two(environ: Any, start_response: Any) -> None: ...


@pytest.mark.parametrize(
    ("thing", "message"),
    [
        (either, "could be ASGI (scope, receive, send) or WSGI (environ, start_response)"),
        (maybe_three, "takes 2 to 3 arguments: it could be ASGI"),
        (two, "is async but takes 2 arguments: an ASGI 3 application takes"),
        (FastAPI, "is a class (FastAPI): name an instance of it, or a function"),
        (42, "(int) is not callable"),
        (lambda: None, "takes 0 arguments: neither an ASGI application"),
        (riad.App("x"), "is a riad.App"),
    ],
)
def test_what_is_neither_or_both_is_refused_with_the_reason(thing: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        interface_of(thing, "the object")


def test_ambiguous_message_says_how_to_choose() -> None:
    with pytest.raises(ConfigError, match=r'web_service\(obj, interface="asgi" or "wsgi"\)'):
        interface_of(either)


def namespace(**values: object) -> dict[str, object]:
    return {"__name__": "shop.main", "__file__": "/srv/shop/main.py", **values}


def test_find_app_makes_a_service_for_a_web_application() -> None:
    api = FastAPI()
    service = find_app(namespace(app=api))
    assert isinstance(service, riad.App) and service.network
    assert service.name == "shop"  # main is no name: the package's is taken
    assert "ASGI application (fastapi)" in service.usage()
    wsgi = find_app(namespace(application=Flask(__name__)))  # Django's convention
    assert wsgi is not None and "--threads N" in wsgi.usage()
    assert "--threads" not in service.usage()


def test_find_app_prefers_a_riad_app_and_names_pick() -> None:
    own = riad.App("own")
    assert find_app(namespace(app=FastAPI(), service=own)) is own  # the only App wins
    named = find_app(namespace(api=FastAPI(), app=Flask(__name__)), "api")
    assert named is not None and "ASGI" in named.description
    assert find_app(namespace(app=FastAPI()), "missing") is None
    assert find_app(namespace(helper=print, other=3)) is None  # nothing to serve, quietly
    with pytest.raises(ConfigError, match="not callable"):
        find_app(namespace(settings={"a": 1}), "settings")


def test_factories_are_called_once_for_their_application() -> None:
    calls: list[int] = []

    def create_app() -> FastAPI:
        calls.append(1)
        return FastAPI()

    service = find_app(namespace(create_app=create_app), "create_app()")
    assert service is not None and calls == [1]
    own = riad.App("made")
    assert find_app(namespace(make=lambda: own), "make()") is own
    with pytest.raises(ConfigError, match=r"what broken\(\) returned \(int\) is not callable"):
        find_app(namespace(broken=lambda: 3), "broken()")


@pytest.mark.parametrize(
    ("module", "file", "name"),
    [
        ("inventory", "/a/inventory.py", "inventory"),
        ("mysite.asgi", "/a/mysite/asgi.py", "mysite"),
        ("main", "/a/main.py", "web"),
        ("riad_service_myapi_main", "/home/u/myapi/main.py", "myapi"),
        ("My_Site.wsgi", "/x.py", "my-site"),
    ],
)
def test_service_names_come_from_the_module(module: str, file: str, name: str) -> None:
    assert service_name({"__name__": module, "__file__": file}) == name
