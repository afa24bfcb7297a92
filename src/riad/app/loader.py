"""Finding a service from what the user typed: a file, a folder, or ``module:attr``.

``load_app(spec)`` accepts:

- ``path/to/service.py``: a file defining an ``App``;
- ``path/to/folder``: the folder's ``service.py`` (``riad new`` makes one);
- ``package.module`` or ``package.module:attr``: an importable module (attr
  names the ``App``); ``path/to/service.py:attr`` works too;
- ``module:attr`` naming an ASGI or WSGI application instead (FastAPI,
  Django, Flask...), and ``module:factory()``, a function returning one:
  riad serves it as a service of its own (``riad.app.web``).

In a module, the service is the attribute named by ``:attr``, else the
``App`` named ``app``, else the only ``App`` in it, else the ASGI or WSGI
application named ``app`` or ``application`` (:func:`riad.app.model.find_app`).
A file's folder is put first on ``sys.path`` so a service can import its own
helper modules.

A spec that names nothing usable raises ``ConfigError`` (exit code 2); an
exception raised while the service's code is imported is a bug in the service
and raises ``ServiceLoadError`` holding it (exit code 1, with traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from riad.app.args import ConfigError
from riad.app.model import App, find_app

__all__ = ["ServiceLoadError", "load_app", "service_file"]

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\(\))?\Z")
"""``app``, or a factory called for it: ``create_app()``."""


class ServiceLoadError(Exception):
    """The service's own code raised while being imported (``__cause__`` is the error)."""


def service_file(spec: str) -> Path | None:
    """The file a path spec names (a ``.py`` file, or a folder's ``service.py``), if any."""
    path = Path(spec)
    if path.is_dir():
        candidate = path / "service.py"
        if candidate.is_file():
            return candidate.resolve()
        raise ConfigError(
            f"folder {spec!r} has no service.py: put the service there, "
            f"or create one with riad new {path.name}"
        )
    if path.is_file():
        if path.suffix != ".py":
            raise ConfigError(f"{spec!r} is not a Python file (.py)")
        return path.resolve()
    return None


def load_app(spec: str) -> App:
    """Load the service named by ``spec`` (see the module doc) and return its ``App``."""
    file = service_file(spec)
    attr_of_file: str | None = None
    if file is None and ":" in spec:
        path_part, _, attr_of_file = spec.rpartition(":")
        file = service_file(path_part)
    if file is not None:
        module = _import_file(file)
        app = _find_app(module, attr_of_file or None, spec)
        app.source_path = file
        return app
    module_name, _, attr = spec.partition(":")
    if not _MODULE.match(module_name) or (attr and not _ATTR.match(attr)):
        raise ConfigError(
            f"no service at {spec!r}: give a .py file, a folder with service.py, or module:attr"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                f"no service at {spec!r}: no such file, folder or module {exc.name!r}"
            ) from None
        raise ServiceLoadError(f"importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise ServiceLoadError(f"importing {module_name} failed: {exc}") from exc
    app = _find_app(module, attr or None, spec)
    module_file = getattr(module, "__file__", None)
    if app.source_path is None and module_file:
        app.source_path = Path(module_file).resolve()
    return app


def _import_file(file: Path) -> object:
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "riad_service_" + re.sub(r"\W", "_", file.parent.name + "_" + file.stem)
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {file} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ServiceLoadError(f"loading {file.name} failed: {exc}") from exc
    return module


def _find_app(module: object, attr: str | None, spec: str) -> App:
    if attr is not None and not _ATTR.match(attr):
        raise ConfigError(f"{spec!r}: after ':' give a name (app) or a factory call (create_app())")
    try:
        found = find_app(vars(module), attr)
    except ConfigError as exc:
        raise ConfigError(f"{spec!r}: {exc}") from None
    except Exception as exc:
        raise ServiceLoadError(f"{spec}: calling {attr} failed: {exc}") from exc
    if found is not None:
        return found
    if attr is not None:
        raise ConfigError(f"{spec!r}: the module has no {attr.removesuffix('()')!r}")
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if not apps:
        raise ConfigError(
            f"{spec!r} defines no service: no riad.App, and no ASGI or WSGI application "
            "named app or application (name yours with module:attr)"
        )
    names = ", ".join(sorted(name for name, v in vars(module).items() if isinstance(v, App)))
    raise ConfigError(f"{spec!r} defines several services ({names}): pick one with {spec}:NAME")
