"""scripts/system-deps installs every program the benchmarks start: the command
lines written in bench/*.py are read (their heads, past ``taskset -c N``,
``ip netns exec NS`` and a spread prefix) and each program must be one of
system-deps' or of Debian's essential set."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ESSENTIAL = {"sh", "env", "du", "echo", "apt-get", "apt-cache", "dpkg-deb"}
"""Programs of every Debian system (coreutils, dash, apt, dpkg)."""

_PROGRAM = re.compile(r"[a-z][a-z0-9_.+-]*")


def _words(nodes: list[ast.expr]) -> list[str | None]:
    if nodes and isinstance(nodes[0], ast.Starred):
        # a prefix spread in: a launcher (ip netns exec NS: its words after it count
        # only past ``taskset -c N``) or a program ([*podman, "load", ...]: none do)
        nodes = nodes[1:]
        while nodes and isinstance(nodes[0], ast.Starred):
            nodes = nodes[1:]
        if not nodes or _constant(nodes[0]) != "taskset":
            return []
    return [
        n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None for n in nodes
    ]


def _constant(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _programs(words: list[str | None]) -> Iterator[str]:
    """The programs of a command line: the head and what launchers start."""
    i = 0
    while i < len(words):
        head = words[i]
        if head is None or not _PROGRAM.fullmatch(head):
            return
        rest = words[i + 1 :]
        if head == "taskset" and rest[:1] == ["-c"]:
            yield head
            i += 3
        elif head == "ip" and rest[:2] == ["netns", "exec"]:
            yield head
            i += 4
        else:
            # an option after it: a command line, not a list of names
            if rest and rest[0] is not None and rest[0].startswith("-"):
                yield head
            return


def bench_programs() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for script in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            names: list[str] = []
            if isinstance(node, ast.List | ast.Tuple):
                names = list(_programs(_words(node.elts)))
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == "which":
                    names = [w for w in _words(node.args[:1]) if w]
                elif called in ("run", "popen"):  # Netns.run("ping", "-c", ...)
                    names = list(_programs(_words(node.args)))
            for name in names:
                found.setdefault(name, set()).add(script.name)
    return found


def system_deps_programs() -> set[str]:
    text = (REPO / "scripts" / "system-deps").read_text()
    needed = re.search(r'^NEEDED="([^"]*)"', text, re.M)
    assert needed is not None, "scripts/system-deps has no NEEDED list"
    return {pair.split(":")[0] for pair in needed.group(1).split()}


def test_the_scan_finds_the_benchmarks_load_generators() -> None:
    found = bench_programs()
    for program, script in [("ab", "http.py"), ("wrk", "http.py"), ("h2load", "h2.py"),
                            ("ping", "stack.py"), ("taskset", "websocket.py")]:  # fmt: skip
        assert script in found.get(program, set()), (program, found.get(program))


def test_system_deps_installs_every_program_a_benchmark_starts() -> None:
    installed = system_deps_programs() | ESSENTIAL
    missing = {p: sorted(s) for p, s in bench_programs().items() if p not in installed}
    assert not missing, f"add to scripts/system-deps (command:package): {missing}"
