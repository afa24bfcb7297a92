"""Source text that start-up compiles at run time, compiled at build time instead.

Start-up compiles source text, not only bytecode from ``.pyc`` files:
``dataclasses`` writes each class's ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` and frozen ``__setattr__`` as text and ``exec``\\ s it,
``collections.namedtuple`` ``eval``\\ s its ``__new__``, ``typing.ForwardRef``
compiles its string. An echo service on riad's stack does that about 360
times before it serves. Under emulation (QEMU's TCG) that is the dearest
code to run: the interpreter's parser and compiler run nowhere else in an
image, so the emulator translates them just for this (measured: about 0.45 s
of a 1.4 s start-up).

:class:`CompileHook` wraps ``builtins.exec``, ``eval`` and ``compile``:

- recording (the build-time start-up trace): every source string compiled
  is noted as a :data:`Key` (source, file name, mode, ``__future__`` flags);
- serving (PID 1 of an image, until start-up is over): a table of code
  objects compiled at build time from those keys (:func:`compile_table`,
  :func:`load_table`) answers; any other source is compiled as before.

Behaviour is unchanged: ``exec(text, g, l)`` runs ``compile(text,
"<string>", "exec")`` with the calling frame's ``__future__`` flags, as the
built-in does, and the table holds exactly that code.

Regular expressions are the other thing start-up compiles (``re``'s compiler
is Python code: ``textwrap``, ``tokenize``, ``typing`` and riad compile some
twenty patterns as they are imported). The trace lists the patterns left in
``re``'s cache (:data:`RegexKey`); :func:`compile_table` runs ``re``'s
compiler on them at build time and keeps what it hands ``_sre.compile``;
:func:`serve` puts the patterns ``_sre`` makes from that in ``re``'s cache,
where ``re.compile`` finds them.

The table is valid only for the interpreter that made it; the image packs
that interpreter.
"""

from __future__ import annotations

import builtins
import marshal
import sys
from types import CodeType
from typing import Any

__all__ = [
    "CompileHook",
    "Key",
    "RegexKey",
    "cached_regexes",
    "compile_table",
    "load_table",
    "serve",
    "stop",
]

Key = tuple[str, str, str, int]
"""``(source, filename, mode, flags)``: one compilation, as ``compile`` takes it."""
RegexKey = tuple["str | bytes", int]
"""``(pattern, flags)``: one regular expression, as ``re.compile`` takes it."""
Regexes = list[tuple["str | bytes", int, tuple[Any, ...]]]

# The __future__ flags a compilation inherits from the calling frame (PyCF_MASK).
FUTURE_FLAGS = 0x1FE0000

_exec = builtins.exec
_eval = builtins.eval
_compile = builtins.compile


def compile_table(keys: list[Key], regexes: list[RegexKey] | None = None) -> bytes:
    """The code for ``keys`` and the patterns of ``regexes``, compiled here, as
    ``marshal`` bytes for :func:`load_table`.

    Keys that do not compile (start-up caught the ``SyntaxError``) are left out.
    """
    pairs = []
    for key in sorted(set(keys)):
        try:
            pairs.append((key, _compile(key[0], key[1], key[2], key[3], True)))
        except (SyntaxError, ValueError):
            continue
    patterns = []
    for pattern, flags in sorted(set(regexes or ()), key=repr):
        args = _sre_arguments(pattern, flags)
        if args is not None:
            patterns.append((pattern, flags, args))
    return marshal.dumps((tuple(pairs), tuple(patterns)))


def _sre_module() -> Any:
    """``_sre``, the regular expression engine (it has no type stub)."""
    import re

    return re._compiler._sre  # type: ignore[attr-defined]


def _sre_arguments(pattern: str | bytes, flags: int) -> tuple[Any, ...] | None:
    """What ``re``'s compiler hands ``_sre.compile`` for ``pattern`` (after
    the pattern itself), checked against ``re.compile``; None if it differs."""
    import re

    _sre = _sre_module()
    try:
        parsed = re._parser.parse(pattern, flags)  # type: ignore[attr-defined]
        code = re._compiler._code(parsed, flags)  # type: ignore[attr-defined]
        state = parsed.state
        indexgroup: list[str | None] = [None] * state.groups
        for name, index in state.groupdict.items():
            indexgroup[index] = name
        # Plain ints: re's opcodes are an int subclass marshal does not take.
        groupindex = {str(name): int(index) for name, index in state.groupdict.items()}
        args = (
            int(flags | state.flags),
            [int(op) for op in code],
            int(state.groups - 1),
            groupindex,
            tuple(indexgroup),
        )
        if _sre.compile(pattern, *args) != re.compile(pattern, flags):
            return None
    except Exception:  # a pattern this interpreter's re cannot take apart
        return None
    return args


def cached_regexes() -> list[RegexKey]:
    """The patterns in ``re``'s cache (compiled by this process so far)."""
    re = sys.modules.get("re")
    cache = getattr(re, "_cache", None)
    if not isinstance(cache, dict):
        return []
    return [
        (key[1], key[2])
        for key in cache
        if isinstance(key, tuple)
        and len(key) == 3
        and isinstance(key[1], str | bytes)
        and isinstance(key[2], int)
        and not key[2] & 128  # re.DEBUG: never cached by re either
    ]


def load_table(data: bytes) -> tuple[dict[Key, CodeType], Regexes]:
    """The table :func:`compile_table` wrote: code by key, and the patterns."""
    pairs, patterns = marshal.loads(data)
    return dict(pairs), list(patterns)


def seed_regexes(patterns: Regexes) -> int:
    """Put the patterns :func:`load_table` read in ``re``'s cache; how many."""
    import re

    _sre = _sre_module()
    cache = re._cache  # type: ignore[attr-defined]
    for pattern, flags, args in patterns:
        cache[type(pattern), pattern, flags] = _sre.compile(pattern, *args)
    return len(patterns)


class CompileHook:
    """Wraps ``exec``, ``eval`` and ``compile`` of ``builtins`` (see the module doc)."""

    def __init__(self, table: dict[Key, CodeType] | None = None) -> None:
        self.table = table
        """Code to answer with; ``None``: record only."""
        self.seen: list[Key] = []
        self.hits = 0
        self.misses = 0

    def install(self) -> None:
        builtins.exec = self._exec
        builtins.eval = self._eval
        builtins.compile = self._compile

    def uninstall(self) -> None:
        """Put the built-ins back and let the table go."""
        builtins.exec = _exec
        builtins.eval = _eval
        builtins.compile = _compile
        self.table = None

    def _code(self, source: str, filename: str, mode: str, flags: int) -> CodeType:
        key = (source, filename, mode, flags)
        known = None if self.table is None else self.table.get(key)
        if known is not None:
            self.hits += 1
            return known
        self.misses += 1
        code: CodeType = _compile(source, filename, mode, flags, True)
        if self.table is None:
            self.seen.append(key)
        return code

    def _run_text(self, source: str, mode: str, globals: Any, locals: Any) -> tuple[Any, ...]:
        """What ``exec``/``eval`` of text compiles and runs in, seen from their caller."""
        caller = sys._getframe(2)
        if globals is None:
            globals = caller.f_globals
            if locals is None:
                locals = caller.f_locals
        flags = caller.f_code.co_flags & FUTURE_FLAGS
        return self._code(source, "<string>", mode, flags), globals, locals

    def _exec(self, source: Any, globals: Any = None, locals: Any = None, /, **kwargs: Any) -> None:
        if isinstance(source, str):
            source, globals, locals = self._run_text(source, "exec", globals, locals)
        _exec(source, globals, locals, **kwargs)

    def _eval(self, source: Any, globals: Any = None, locals: Any = None, /) -> Any:
        if isinstance(source, str):
            # eval() drops leading blanks of a string, as the built-in does.
            source, globals, locals = self._run_text(source.lstrip(" \t"), "eval", globals, locals)
        return _eval(source, globals, locals)

    def _compile(
        self,
        source: Any,
        filename: Any,
        mode: str,
        flags: int = 0,
        dont_inherit: bool = False,
        optimize: int = -1,
        **kwargs: Any,
    ) -> Any:
        if not (
            isinstance(source, str)
            and isinstance(filename, str)
            and flags & ~FUTURE_FLAGS == 0
            and optimize == -1
            and not kwargs
        ):
            return _compile(source, filename, mode, flags, dont_inherit, optimize, **kwargs)
        if not dont_inherit:
            flags |= sys._getframe(1).f_code.co_flags & FUTURE_FLAGS
        return self._code(source, filename, mode, flags)


_serving: CompileHook | None = None


def serve(path: str) -> None:
    """Answer compilations from the table in file ``path`` (none if it is missing),
    with the regular expressions in ``re``'s cache."""
    global _serving
    try:
        with open(path, "rb") as handle:
            table, patterns = load_table(handle.read())
    except OSError:
        return
    _serving = CompileHook(table)
    _serving.install()
    if patterns:
        seed_regexes(patterns)


def stop() -> CompileHook | None:
    """Stop :func:`serve`: the built-ins back, the table gone; the hook (for its counts)."""
    global _serving
    hook, _serving = _serving, None
    if hook is not None:
        hook.uninstall()
    return hook
