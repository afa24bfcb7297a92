"""An existing ASGI or WSGI application as a riad service.

``riad run main:app`` accepts, besides a ``riad.App``, any ASGI 3 application
(FastAPI, Starlette, Django's ``get_asgi_application()``, Falcon's
``falcon.asgi.App``...) and any WSGI application (Flask, Django's
``get_wsgi_application()``, Falcon's ``falcon.App``...). riad makes a
``riad.App`` for it (:func:`web_service`), so every target runs it
unchanged: HTTP on ``--port``, HTTPS on ``--https-port`` when the service has
a certificate store, lifespan, access log, graceful shutdown, ``--root-path``,
forwarded headers from trusted proxies (``--forwarded-allow-ips``), WSGI on a
bounded pool of threads (``--threads``).

Telling them apart (:func:`interface_of`): what is called is the object
itself if it is a function, else its class's ``__call__``.

- a coroutine function taking ``(scope, receive, send)`` is ASGI 3 (a class
  with ``async def __call__(self, scope, receive, send)`` too);
- a plain function taking exactly ``(environ, start_response)`` is WSGI;
- a plain function taking exactly three positional arguments is ASGI 3 (a
  wrapper that returns the coroutine of another);
- anything else is refused with the reason: a class (give an instance, or a
  factory ``module:create_app()``), an object that is not callable, an
  ``async`` callable of two arguments, and a callable that could be called
  both ways (``*args``, a defaulted third argument): wrap that one yourself
  with ``web_service(obj, interface="asgi")`` and name the result.

A factory (``module:create_app()``, or ``riad run module:create_app
--factory``) is called with no arguments when the service loads and its
result classified the same way.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from riad.app.args import ConfigError, port
from riad.app.model import MAX_THREADS, App, parse_size
from riad.services.http.asgi import ASGIApp, Receive, Scope, Send

__all__ = [
    "Interface",
    "ProxyHeaders",
    "TrustedProxies",
    "interface_of",
    "service_from_namespace",
    "web_service",
    "with_root_path",
]

Interface = Literal["asgi", "wsgi"]

TLS_STORE = "tls"
"""The optional certificate store: ``certs/`` beside the app, or ``--tls-certs DIR``."""

ASGI_THREADS = 64
"""Threads an ASGI application may run sealed: anyio's default limit (40) and
asgiref's executors, with room."""

_DEFAULT_NAMES = ("app", "application")
"""What a module's web application is called when ``:attr`` does not say (Django: ``application``)."""


def _positional(fn: Callable[..., Any]) -> tuple[int, int | None] | None:
    """``(required, most)`` positional arguments of ``fn`` (``most`` None: ``*args``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    required, most = 0, 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return required, None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            if param.default is param.empty:
                required += 1
        elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            return None  # needs a keyword no server passes
    return required, most


def _is_coroutine_function(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or asyncio.iscoroutinefunction(fn)


def interface_of(obj: object, what: str = "the object") -> Interface:
    """Whether ``obj`` is an ASGI 3 or a WSGI application (see the module text).

    Raises ``ConfigError`` saying why it is neither, or why it cannot tell.
    """
    if isinstance(obj, App):
        raise ConfigError(f"{what} is a riad.App, not an ASGI or WSGI application")
    if inspect.isclass(obj):
        raise ConfigError(
            f"{what} is a class ({obj.__name__}): name an instance of it, or a function "
            "that makes one with module:factory() or --factory"
        )
    if not callable(obj):
        raise ConfigError(
            f"{what} ({type(obj).__name__}) is not callable: give a riad.App, an ASGI "
            "application (async (scope, receive, send)) or a WSGI application "
            "((environ, start_response))"
        )
    routine = inspect.isroutine(obj) or isinstance(obj, functools.partial)
    is_async = _is_coroutine_function(obj if routine else type(obj).__call__)
    counts = _positional(obj)  # bound: without self
    if counts is None:
        raise ConfigError(f"{what}: riad cannot read its arguments; " + _WRAP_HINT)
    required, most = counts
    takes = _arity(required, most)
    if is_async:
        if required <= 3 and (most is None or most >= 3):
            return "asgi"
        raise ConfigError(
            f"{what} is async but takes {takes}: an ASGI 3 application takes "
            "(scope, receive, send) (ASGI 2 applications are not supported)"
        )
    can_wsgi = required <= 2 and (most is None or most >= 2)
    can_asgi = required <= 3 and (most is None or most >= 3)
    if can_wsgi and can_asgi:
        raise ConfigError(
            f"{what} takes {takes}: it could be ASGI (scope, receive, send) or WSGI "
            "(environ, start_response); " + _WRAP_HINT
        )
    if can_wsgi:
        return "wsgi"
    if can_asgi:
        return "asgi"
    raise ConfigError(
        f"{what} takes {takes}: neither an ASGI application (scope, receive, send) "
        "nor a WSGI one (environ, start_response)"
    )


_WRAP_HINT = (
    'say which it is: service = riad.app.web.web_service(obj, interface="asgi" or "wsgi") '
    "in the module, and run module:service"
)


def _arity(required: int, most: int | None) -> str:
    if most is None:
        return f"{required} or more arguments"
    if required == most:
        return f"{most} argument{'s' if most != 1 else ''}"
    return f"{required} to {most} arguments"


# -- ASGI building blocks --------------------------------------------------------


def with_root_path(app: ASGIApp, root_path: str) -> ASGIApp:
    """``app`` mounted under ``root_path`` by a proxy that strips it (as uvicorn's
    ``--root-path``): ``root_path`` is set in each scope and put back in front of
    ``path`` and ``raw_path``, so the application builds its URLs with it."""
    root_path = root_path.rstrip("/")
    if not root_path:
        return app
    if not root_path.startswith("/"):
        raise ConfigError(f"--root-path {root_path!r}: give a path that starts with /")
    raw_root = root_path.encode("utf-8")

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["root_path"] = root_path
            scope["path"] = root_path + scope["path"]
            scope["raw_path"] = raw_root + (scope.get("raw_path") or b"")
        await app(scope, receive, send)

    return mounted


_KNOWN_PEERS = 1024
"""How many peer addresses ``TrustedProxies`` remembers its answer for."""


class TrustedProxies:
    """The peers whose forwarded headers are believed: ``"127.0.0.1,10.0.0.0/8"`` or ``"*"``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._known: dict[str, bool] = {}
        self.everyone = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if item == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (write 127.0.0.1,10.0.0.0/8 or *)"
                ) from None

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        text = str(host)
        known = self._known.get(text)
        if known is None:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                known = False
            else:
                known = any(address in network for network in self.networks)
            if len(self._known) < _KNOWN_PEERS:  # every request asks: parse each peer once
                self._known[text] = known
        return known

    def __str__(self) -> str:
        return self.text


_FORWARDED_PAIR = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*'
)


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 section 4: ``for=1.2.3.4;proto=https, for="[::1]:80"`` as a list of dicts."""
    elements: list[dict[str, str]] = []
    for element in _split_outside_quotes(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split_outside_quotes(element, ";"):
            found = _FORWARDED_PAIR.fullmatch(pair)
            if found is None:
                continue
            raw = found.group(2)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            pairs[found.group(1).lower()] = raw
        elements.append(pairs)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _node_host(node: str) -> str:
    """The address of an RFC 7239 node (``1.2.3.4:80``, ``[::1]:80``, ``unknown``)."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else ""
    return node.rsplit(":", 1)[0] if node.count(":") == 1 else node


_FORWARDED_NAMES = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto"})


class ProxyHeaders:
    """Believe ``Forwarded`` / ``X-Forwarded-For`` / ``X-Forwarded-Proto`` from trusted peers.

    A request from a peer in ``trusted`` gets as its ``client`` the nearest
    address in the forwarded chain that is not itself trusted (the chain read
    from the right, as each proxy appends), and as its ``scheme`` what that
    proxy says (``https``, or ``wss`` for a WebSocket). ``Forwarded``
    (RFC 7239) is read when present, else the ``X-Forwarded-*`` pair. From any
    other peer the headers are left as they are and change nothing.
    """

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if (
                client is not None
                and not _FORWARDED_NAMES.isdisjoint([name for name, _ in scope["headers"]])
                and client[0] in self.trusted
            ):
                scope = self._forwarded(scope)
        await self.app(scope, receive, send)

    def _forwarded(self, scope: Scope) -> Scope:
        forwarded: list[str] = []
        x_for: list[str] = []
        x_proto = ""
        for name, value in scope["headers"]:
            if name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-forwarded-for":
                x_for += [part.strip() for part in value.decode("latin-1").split(",")]
            elif name == b"x-forwarded-proto":
                x_proto = value.decode("latin-1").split(",")[-1].strip()
        chain: list[tuple[str, str]] = []  # (client address, proto), nearest last
        if forwarded:
            for element in _forwarded_elements(",".join(forwarded)):
                chain.append((_node_host(element.get("for", "")), element.get("proto", "")))
        elif x_for:
            chain = [(host, "") for host in x_for if host]
            if chain and x_proto:
                chain[-1] = (chain[-1][0], x_proto)
        elif x_proto:
            chain = [("", x_proto)]
        if not chain:
            return scope
        scope = dict(scope)
        chosen = chain[0]
        for host, proto in reversed(chain):
            chosen = (host, proto or chosen[1])
            if host not in self.trusted:
                break
        host, proto = chosen
        if host:
            scope["client"] = (host, 0)
        proto = proto.lower()
        if proto in ("http", "https"):
            secure = proto == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = proto
        return scope


# -- the service ------------------------------------------------------------------


def _trusted(text: str) -> TrustedProxies:
    return TrustedProxies(text)


def _threads(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1024:
        raise ValueError("give a number of threads from 1 to 1024")
    return value


def _root_path(text: str) -> str | None:
    if text and not text.startswith("/"):
        raise ValueError("give a path that starts with / (as the proxy sees it: /api)")
    return text.rstrip("/") or None


def _address(text: str) -> str | None:
    return text or None


class _Size(int):
    """A byte count that shows as it was written (``16M``)."""

    text: str

    def __new__(cls, text: str) -> _Size:
        value = super().__new__(cls, parse_size(text))
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text


def web_service(
    application: object,
    *,
    name: str = "web",
    interface: Interface | None = None,
    description: str = "",
) -> App:
    """A ``riad.App`` serving ``application`` (ASGI 3 or WSGI) over HTTP, and HTTPS.

    ``interface`` says which it is; by default :func:`interface_of` tells.
    The service's boot arguments: ``--port`` (8000), ``--https-port`` (8443,
    served when the service has its certificate store: ``certs/`` beside it,
    with ``server.pem`` and ``server.key`` as ``riad cert`` makes them, or
    ``--tls-certs DIR``), ``--host``, ``--root-path``,
    ``--forwarded-allow-ips``, ``--max-body``, ``--lifespan``, and for WSGI
    ``--threads``.
    """
    kind = interface or interface_of(application)
    if kind not in ("asgi", "wsgi"):
        raise ValueError(f"interface {interface!r}: choose asgi or wsgi")
    about = description or f"{'an ASGI' if kind == 'asgi' else 'a WSGI'} application"
    # Threads: the WSGI pool (--threads, up to 1024); an ASGI framework's own for its
    # sync code (anyio's 40 workers, asgiref's executors).
    threads = MAX_THREADS if kind == "wsgi" else ASGI_THREADS
    service = App(name, network=True, description=about, threads=threads)
    # One request through the whole path (server, framework, routing, an answer) before
    # the seal; the application's own are declared with --warmup (docs/writing-a-service.md).
    service.warmup("GET /")
    http_port = service.arg("--port", port, default=8000, help="HTTP port")
    https_port = service.arg(
        "--https-port",
        port,
        default=8443,
        help=f"HTTPS port, served when the {TLS_STORE!r} store holds server.pem and server.key",
    )
    host = service.arg(
        "--host",
        _address,
        default=None,
        metavar="ADDRESS",
        help="listen on this address only (default: every address of the service)",
    )
    root_path = service.arg(
        "--root-path",
        _root_path,
        default=None,
        metavar="PATH",
        help="the path a proxy mounts the application under (it strips it)",
    )
    allowed = service.arg(
        "--forwarded-allow-ips",
        _trusted,
        default=TrustedProxies("127.0.0.1"),
        metavar="ADDRESSES",
        help="proxies whose Forwarded/X-Forwarded-For/-Proto headers are believed "
        "(addresses or networks, comma-separated, or *)",
    )
    max_body = service.arg(
        "--max-body",
        _Size,
        default=_Size("16M"),
        metavar="SIZE",
        help="largest request body (413 above it; 512K, 16M...)",
    )
    lifespan = service.arg(
        "--lifespan",
        str,
        default="auto",
        choices=("auto", "off"),
        help="run the application's lifespan (auto: if it speaks it)",
    )
    pool = (
        service.arg(
            "--threads",
            _threads,
            default=10,
            metavar="N",
            help="worker threads for the WSGI application (requests beyond wait)",
        )
        if kind == "wsgi"
        else None
    )
    service.kv(
        TLS_STORE,
        source="certs",
        optional=True,
        help="HTTPS certificate: server.pem and server.key (riad cert DIR)",
    )
    # imported once the store turns out to be there: after a sandbox's seal
    service.lazy_imports("riad.services.tls", "riad.services.tls.context")

    @service.main
    async def main(dev: Any) -> None:
        from riad.app.composed import MissingDeviceError
        from riad.services.http import HttpLimits, HttpServer

        log = dev.logger("http")
        target: ASGIApp = application  # type: ignore[assignment]
        if pool is not None:
            from riad.services.http.wsgi import WsgiApp

            target = WsgiApp(application, threads=pool.value, log=log)  # type: ignore[arg-type]
        served = ProxyHeaders(with_root_path(target, root_path.value or ""), allowed.value)
        tls = None
        try:
            store = dev.kv(TLS_STORE)
        except MissingDeviceError:
            store = None
        if store is not None:
            from riad.services.tls import TlsServer
            from riad.services.tls.context import TlsConfigError

            try:
                tls = await TlsServer.from_kv(store)
            except TlsConfigError as exc:
                raise ConfigError(f"HTTPS: {exc}") from None
        server = HttpServer(
            served,
            limits=HttpLimits(max_body_bytes=int(max_body.value)),
            lifespan=lifespan.value != "off",
            log=log,
            access_log=dev.logger("http.access"),
        )
        await server.startup()
        try:
            address = host.value
            plain = await server.listen(dev.stack, address, http_port.value)
            urls = {"url": _url(dev, "http", address, plain.local_addr[1])}
            if tls is not None:
                secure = await server.listen(dev.stack, address, https_port.value, tls=tls.wrap)
                urls["https"] = _url(dev, "https", address, secure.local_addr[1])
            dev.log.info("serving", **urls)
            await dev.wait_for_shutdown()
        finally:
            await server.shutdown()

    return service


def _url(dev: Any, scheme: str, host: str | None, port_number: int) -> str:
    if host is None:
        addresses = dev.stack.ipv4_addresses
        host = "localhost" if "127.0.0.1" in addresses or not addresses else addresses[0]
    return f"{scheme}://{host}:{port_number}/"


_GENERIC = {"app", "main", "asgi", "wsgi", "server", "service", "api", "__init__", "__main__"}


def service_name(namespace: Mapping[str, object]) -> str:
    """A service name for the application of a module (``mysite.asgi`` -> ``mysite``)."""
    spec = namespace.get("__spec__")
    module = getattr(spec, "name", None) or str(namespace.get("__name__", ""))
    parts = [part for part in module.split(".") if part]
    if parts and parts[0].startswith("riad_service_"):  # a file the loader imported
        file = str(namespace.get("__file__", ""))
        parts = [part for part in file.removesuffix(".py").split("/") if part][-2:]
    for part in reversed(parts):
        if part.lower() not in _GENERIC:
            candidate = re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-")
            if candidate and candidate[0].isalpha():
                return candidate
    return "web"


def service_from_namespace(namespace: Mapping[str, object], attr: str | None) -> App | None:
    """The service for a web application in ``namespace`` (``attr`` names it), or None.

    ``attr`` may be a factory call, ``create_app()``. With ``attr`` a mistake
    raises ``ConfigError`` (what the object is, and why it is no application);
    without it, ``app`` and then ``application`` are tried quietly.
    """
    if attr is not None:
        factory = attr.endswith("()")
        key = attr.removesuffix("()")
        if key not in namespace:
            return None
        obj = namespace[key]
        what = f"{key}" if not factory else f"{key}()"
        if factory:
            if not callable(obj):
                raise ConfigError(f"{key} is not callable: a factory is a function")
            obj = obj()
            what = f"what {key}() returned"
            if isinstance(obj, App):
                return obj
        kind = interface_of(obj, what)
        return web_service(
            obj, name=service_name(namespace), interface=kind, description=_about(obj, kind)
        )
    for key in _DEFAULT_NAMES:
        obj = namespace.get(key)
        if obj is None or isinstance(obj, App):
            continue
        try:
            kind = interface_of(obj, key)
        except ConfigError:
            continue
        return web_service(
            obj, name=service_name(namespace), interface=kind, description=_about(obj, kind)
        )
    return None


def _about(obj: object, kind: Interface) -> str:
    """``a WSGI application (flask)``: the framework is the package its class is from."""
    text = f"{'an ASGI' if kind == 'asgi' else 'a WSGI'} application"
    if inspect.isroutine(obj) or isinstance(obj, functools.partial):
        return text
    package = type(obj).__module__.partition(".")[0]
    if package in ("builtins", "__main__") or package.startswith("riad_service_"):
        return text
    return f"{text} ({package})"
