"""The start-up trace: real child runs of stand-in services, and the import graph."""

import sys
from pathlib import Path

import pytest

from riad.image.trace import StartupTrace, TracedModule, trace_startup

SERVICES = Path(__file__).resolve().parents[1] / "vm" / "services"


def test_trace_of_an_asyncio_service_stops_when_it_idles() -> None:
    trace = trace_startup([str(SERVICES / "echo.py"), "--port", "0"])
    assert trace.reason == "idle"
    assert trace.error is None
    assert {"asyncio", "asyncio.streams", "argparse", "socket"} <= set(trace.modules)
    assert trace.modules["_socket"].file is not None
    assert trace.modules["_socket"].file.endswith(".so")
    assert any(Path(f).name.startswith("libc.so") for f in trace.mapped_files)
    assert ("__main__", "argparse") in trace.edges


def test_trace_of_a_failing_start_records_the_traceback() -> None:
    trace = trace_startup([str(SERVICES / "crash.py")])
    assert trace.reason == "raised"
    assert trace.error is not None
    assert "RuntimeError: settings are missing" in trace.error


def test_entry_point_function_and_preload() -> None:
    trace = trace_startup(
        ["riad.targets.vm.guest:trace_entry", "socket", "echo", "--port", "0"],
        preload=["termios"],
        path=[str(SERVICES), *sys.path],
    )
    assert trace.reason == "idle"
    assert {"termios", "riad.targets.vm.guest", "asyncio"} <= set(trace.modules)
    needed = trace.needed_modules({"ssl": ("asyncio.",)})
    assert "asyncio" in needed and "argparse" in needed
    assert "ssl" not in needed and "_ssl" not in needed


def _trace(edges: list[tuple[str, str]], loaded_under: dict[str, str]) -> StartupTrace:
    names = {b for _, b in edges} | set(loaded_under) | {"app"}
    return StartupTrace(
        modules={n: TracedModule(n, f"/{n}.py", False) for n in names},
        mapped_files=(),
        error=None,
        reason="idle",
        startup=("app",),
        edges=tuple(edges),
        loaded_under=loaded_under,
    )


def test_guarded_import_alone_does_not_make_a_module_needed() -> None:
    trace = _trace(
        [("app", "asyncio"), ("asyncio", "ssl"), ("ssl", "_ssl"), ("app", "json")],
        {"_ssl": "ssl", "json.decoder": "json"},
    )
    assert trace.needed_modules({"ssl": ("asyncio",)}) == {"app", "asyncio", "json", "json.decoder"}
    assert "ssl" in trace.needed_modules()


def test_direct_import_keeps_an_optional_module() -> None:
    trace = _trace([("app", "asyncio"), ("asyncio", "ssl"), ("app", "ssl")], {})
    assert "ssl" in trace.needed_modules({"ssl": ("asyncio",)})


def test_needed_submodule_brings_its_package() -> None:
    trace = _trace([("app", "email.utils")], {"email": "email.utils"})
    assert {"email", "email.utils"} <= trace.needed_modules()


def test_files_openssl_reads_by_name_are_recorded_and_taken() -> None:
    from riad.image.data import data_files

    start = Path(__file__).resolve().parent / "sourceless" / "tls_start.py"
    trace = trace_startup([str(start)], path=sys.path)
    assert trace.error is None, trace.error
    import ssl

    import certifi

    bundle = certifi.where()
    default = ssl.get_default_verify_paths().openssl_cafile
    assert bundle in trace.opened and default in trace.opened
    taken = {(d.where, d.rel) for d in data_files(trace, start.parent, sys.path)}
    assert ("packages", "certifi/cacert.pem") in taken
    assert ("host", default) in taken  # OpenSSL's default bundle, at the path it opens


def test_modules_loaded_by_import_module_are_needed(tmp_path: Path) -> None:
    # a plugin and its helper that import each other, loaded by name as Django loads
    # an app's models and its database backend: reachable only through import_module
    (tmp_path / "loads_plugin.py").write_text(
        "import importlib\nimportlib.import_module('plugin_mod')\n"
    )
    (tmp_path / "plugin_mod.py").write_text("import plugin_helper\n")
    (tmp_path / "plugin_helper.py").write_text("import plugin_mod\n")
    trace = trace_startup([str(tmp_path / "loads_plugin.py")], path=[str(tmp_path)])
    assert trace.error is None
    assert {"plugin_mod", "plugin_helper"} <= trace.needed_modules()


def test_the_trace_says_how_much_heap_and_memory_the_service_held(tmp_path: Path) -> None:
    idles = "import asyncio\n{}\nasyncio.run(asyncio.sleep(3600))\n"
    (tmp_path / "holds.py").write_text(idles.format("held = bytes(range(256)) * (32 << 12)"))
    (tmp_path / "small.py").write_text(idles.format("held = b''"))
    large = trace_startup([str(tmp_path / "holds.py")])
    small = trace_startup([str(tmp_path / "small.py")])
    assert large.reason == small.reason == "idle"
    assert large.heap_kb - small.heap_kb >= 24 << 10
    # the peak resident memory: the heap and the interpreter's mapped files
    assert large.peak_kb - small.peak_kb >= 24 << 10
    assert small.peak_kb > small.heap_kb > 0
    from riad.targets.vm.build import HEAP_MB, needed_memory_mb

    assert small.heap_kb < HEAP_MB << 10  # an echo's heap: the default holds it
    assert needed_memory_mb(0, 0, small.heap_kb) == needed_memory_mb(0, 0)
    assert needed_memory_mb(0, 0, large.heap_kb) >= 9 + 24 * 1.25


def test_the_memory_an_image_needs_unpacking_and_running() -> None:
    from riad.targets.vm.build import needed_memory_mb

    mib = 1 << 20
    # unpacking into the ramfs root: 6 + 40 packed + 40 of files, rounded up to 8
    assert needed_memory_mb(40 * mib, 40 * mib) == 88
    # running: 9 + 40 of files + the 16 MiB least heap
    assert needed_memory_mb(40 * mib, 10 * mib) == 72
    # the echo image (13.7 MB of files, 3.95 MB of them the tables' that PID 1 removes,
    # 5.3 MB lz4, a 20 MB traced heap): 48; on the static interpreter (8.8 MB of files,
    # 3.2 MB lz4): 40, where counting the tables' files as well would give 48
    assert needed_memory_mb(13_747_480, 5_287_973, 20024, "direct", 3_952_488) == 48
    assert needed_memory_mb(8_813_628, 3_163_082, 20024, "direct", 3_950_969) == 40
    assert needed_memory_mb(8_813_628, 3_163_082, 20024) == 48
    # the socket kernel keeps 4 MiB more: 9 + 4 of files + 16 of heap fits 32 MiB on
    # the direct kernel, 33 on the socket kernel asks for 40
    assert needed_memory_mb(4 * mib, 1 * mib, net="direct") == 32
    assert needed_memory_mb(4 * mib, 1 * mib, net="socket") == 40
    # rounded up, not down: 9 + 4 + 11.5 MiB of files + a 17.3 MiB heap is 41.7, given 48
    assert needed_memory_mb(12_012_556, 4_835_851, 14156, net="socket") == 48
    assert needed_memory_mb(12_012_556, 4_835_851, 20480, net="direct") == 48


def test_a_codec_looked_up_by_the_locales_name_is_the_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Django asks for the locale's codec at import. A vm image has no locale: its
    # PID 1 is in the C locale, whatever the host building it is in.
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    (tmp_path / "asks.py").write_text(
        "import codecs, locale\ncodecs.lookup(locale.getlocale()[1] or 'ascii')\n"
    )
    trace = trace_startup([str(tmp_path / "asks.py")], as_image=True)
    assert trace.error is None
    assert "encodings.ascii" in trace.needed_modules()
