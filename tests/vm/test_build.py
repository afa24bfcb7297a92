"""The vm image builder's pieces that need no boot: the kernel command line, compiled modules."""

import pytest

from riad.image.boot import boot_cmdline


def test_cmdline_carries_the_boot_arguments_in_one_parameter() -> None:
    line = boot_cmdline([], ["--port", "7"], accel="tcg")
    assert line.endswith('RIAD_ARGS="--port 7"')
    assert "rdinit=/usr/bin/python" in line and " -u /riadinit" in line
    assert "noapictimer" in line
    assert "noapictimer" not in boot_cmdline([], [], accel="kvm")
    assert " -- " not in line


def test_docstrings_can_be_left_out_of_compiled_modules() -> None:
    import marshal

    from riad.targets.vm.build import compile_pyc

    source = b'"""Module doc."""\nclass A:\n    """Class doc."""\ndef f():\n    """Doc."""\n    return 1\n'
    stripped = compile_pyc(source, "m.py", docstrings=False)
    kept = compile_pyc(source, "m.py")
    namespace: dict[str, object] = {}
    exec(marshal.loads(stripped[16:]), namespace)
    assert namespace.get("__doc__") is None
    assert namespace["f"].__doc__ is None and namespace["f"]() == 1  # type: ignore[attr-defined]
    assert namespace["A"].__doc__ is None  # type: ignore[attr-defined]
    assert b"Class doc." in kept and b"Class doc." not in stripped


def test_dataclasses_keep_their_docstrings() -> None:
    """A dataclass without ``__doc__`` would get one from ``inspect.signature`` at start-up."""
    import marshal

    from riad.targets.vm.build import compile_pyc

    source = (
        b"import dataclasses\nfrom dataclasses import dataclass\n"
        b'@dataclass(frozen=True)\nclass P:\n    """Point."""\n    x: int\n'
        b'@dataclasses.dataclass\nclass Q:\n    """Other."""\n    y: int\n'
        b'class R:\n    """Plain."""\n'
    )
    namespace: dict[str, object] = {}
    exec(marshal.loads(compile_pyc(source, "m.py", docstrings=False)[16:]), namespace)
    assert namespace["P"].__doc__ == "Point."  # type: ignore[attr-defined]
    assert namespace["Q"].__doc__ == "Other."  # type: ignore[attr-defined]
    assert namespace["R"].__doc__ is None  # type: ignore[attr-defined]


def test_column_positions_can_be_left_out_and_lines_stay() -> None:
    import marshal
    import traceback

    from riad.targets.vm.build import compile_code, without_columns

    source = b"def inner(x):\n    return 1 / x\n\ndef outer():\n    return inner(0) + 1\n"
    code = compile_code(source, "/usr/lib/m.py")
    [blob] = without_columns([marshal.dumps(code)])
    stripped = marshal.loads(blob)
    assert len(blob) < len(marshal.dumps(code))
    inner = next(c for c in stripped.co_consts if getattr(c, "co_name", "") == "inner")
    original = next(c for c in code.co_consts if getattr(c, "co_name", "") == "inner")
    assert [p[:2] for p in inner.co_positions()] == [p[:2] for p in original.co_positions()]
    assert all(p[2] is None and p[3] is None for p in inner.co_positions())
    assert any(p[2] is not None for p in original.co_positions())
    namespace: dict[str, object] = {}
    exec(stripped, namespace)
    with pytest.raises(ZeroDivisionError) as raised:
        namespace["outer"]()  # type: ignore[operator]
    frames = traceback.extract_tb(raised.tb)[-2:]
    assert [(f.filename, f.lineno, f.name) for f in frames] == [
        ("/usr/lib/m.py", 5, "outer"),
        ("/usr/lib/m.py", 2, "inner"),
    ]


def test_column_positions_round_trip_keeps_other_values() -> None:
    import marshal

    from riad.targets.vm.build import without_columns

    value = (("key", b"\x00", 3), {"a": [1, 2.5]})
    assert [marshal.loads(b) for b in without_columns([marshal.dumps(value), b"N"])] == [
        value,
        None,
    ]
