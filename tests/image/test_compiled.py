"""The compile hook: source text start-up compiles, recorded, compiled ahead, served."""

from __future__ import annotations

import ast
import builtins
import collections
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from riad.image.compiled import FUTURE_FLAGS, CompileHook, compile_table, load_table


@contextmanager
def hooked(hook: CompileHook) -> Iterator[CompileHook]:
    hook.install()
    try:
        yield hook
    finally:
        hook.uninstall()


def make_classes() -> tuple[type, type]:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0

    Pair = collections.namedtuple("Pair", "left right")
    return Point, Pair


def check_classes(point: type, pair: type) -> None:
    assert point(1, 2) == point(1, 2) and point(1) != point(2)
    assert repr(point(3)) == "make_classes.<locals>.Point(x=3, y=0)"
    assert hash(point(1, 2)) == hash(point(1, 2))
    try:
        point(1).x = 5  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("frozen dataclass accepted an assignment")
    assert pair(1, 2).right == 2


def test_future_flags_match_the_interpreter() -> None:
    import __future__

    flags = 0
    for name in __future__.all_feature_names:
        flags |= getattr(__future__, name).compiler_flag
    # nested_scopes' flag (CO_NESTED) is not one a compilation inherits.
    assert flags & ~__future__.nested_scopes.compiler_flag == FUTURE_FLAGS


def test_records_then_serves_what_dataclasses_and_namedtuple_compile() -> None:
    with hooked(CompileHook()) as recorder:
        check_classes(*make_classes())
    assert recorder.table is None and recorder.hits == 0
    sources = [key[0] for key in recorder.seen]
    assert any("def __init__(self,x:_type_x,y:_type_y=_dflt_y)" in text for text in sources)
    assert any("_tuple_new(_cls, (left, right))" in text for text in sources)
    assert builtins.exec is not recorder._exec

    table, patterns = load_table(compile_table(recorder.seen))
    assert patterns == []
    assert set(table) == set(recorder.seen)
    with hooked(CompileHook(table)) as server:
        check_classes(*make_classes())
    assert server.misses == 0 and server.hits == len(recorder.seen)
    assert server.table is None  # let go on uninstall


def test_unknown_source_is_compiled_as_the_builtins_do() -> None:
    namespace: dict[str, object] = {}
    with hooked(CompileHook({})) as hook:
        exec("value = 6 * 7", namespace)
        assert eval("  value + 1", namespace) == 43  # leading blanks dropped, as eval does
        code = compile("value * 2", "<calc>", "eval")
        assert eval(code, namespace) == 84
    assert hook.misses == 3 and hook.hits == 0


def test_exec_inherits_the_callers_future_flags_and_namespace() -> None:
    # This module has `from __future__ import annotations`: exec'd source
    # compiled here does too, so the annotation is never evaluated.
    source = "def f(x: NoSuchName) -> None: pass\nresult = f.__annotations__['x']"
    with hooked(CompileHook()) as hook:
        exec(source)
        found = locals()
    import __future__

    assert found["result"] == "NoSuchName"
    assert hook.seen[0][3] == __future__.annotations.compiler_flag


def test_syntax_errors_and_ast_requests_pass_through() -> None:
    with hooked(CompileHook()) as hook:
        tree = compile("a + b", "<t>", "eval", ast.PyCF_ONLY_AST)
        assert isinstance(tree, ast.Expression)
        parse: Callable[[str], ast.Module] = ast.parse
        assert isinstance(parse("x = 1"), ast.Module)
        try:
            exec("def broken(:")
        except SyntaxError:
            pass
        else:
            raise AssertionError("broken source compiled")
    assert all(key[0] != "def broken(:" for key in hook.seen)
    assert compile_table([("def broken(:", "<string>", "exec", 0)]) == compile_table([])


def test_regular_expressions_compiled_ahead_land_in_res_cache() -> None:
    import re

    from riad.image.compiled import cached_regexes, seed_regexes

    text_pattern = r"(?P<word>[a-z]+)-(\d{2,})\s*(?i:TAIL)?"
    byte_pattern = rb"^\x00+(?P<rest>.*)$"
    re.compile(text_pattern)
    re.compile(byte_pattern, re.DOTALL)
    seen = cached_regexes()
    assert (text_pattern, 0) in seen and (byte_pattern, re.DOTALL.value) in seen

    _, patterns = load_table(compile_table([], [(text_pattern, 0), (byte_pattern, 16)]))
    assert [p[0] for p in patterns] == [text_pattern, byte_pattern]  # sorted by repr
    re.purge()
    assert seed_regexes(patterns) == 2
    compiled = re.compile(text_pattern)  # from the cache: re's compiler not run
    assert compiled is re._cache[str, text_pattern, 0]  # type: ignore[attr-defined]
    match = compiled.match("abc-123 tail")
    assert match is not None and match.group("word") == "abc" and match.group(2) == "123"
    found = re.compile(byte_pattern, re.DOTALL).match(b"\x00\x00x\ny")
    assert found is not None and found.group("rest") == b"x\ny"
