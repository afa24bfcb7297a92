"""scripts/system-deps installs every program the benchmarks start: the command
lines written in bench/*.py are read (their heads, past ``taskset -c N``,
``ip netns exec NS`` and a spread launcher) and each program must be one of
system-deps' or of Debian's essential set.

A spread prefix (``[*prefix, "ab", "-q", ...]``) is a launcher when the script binds
its name to one somewhere (``prefix = ["ip", "netns", "exec", ns.name]``, ``load =
[*prefix, "taskset", "-c", "0"]``), or to nothing but an empty list: the words after
it are then a command line. Otherwise it is a program of its own with a subcommand
after it (``[*podman, "load", "-i", ...]``), read where its list is written."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ESSENTIAL = {"sh", "env", "du", "echo", "apt-get", "apt-cache", "dpkg-deb"}
"""Programs of every Debian system (coreutils, dash, apt, dpkg)."""

_PROGRAM = re.compile(r"[a-z][a-z0-9_.+-]*")


def _words(nodes: list[ast.expr], launchers: frozenset[str] = frozenset()) -> list[str | None]:
    if nodes and isinstance(nodes[0], ast.Starred):
        # a prefix spread in: a launcher (ip netns exec NS: the words after it are a
        # command line) or a program ([*podman, "load", ...]: they are its subcommand),
        # unless ``taskset -c N`` follows
        spread = nodes[0].value
        launcher = isinstance(spread, ast.Name) and spread.id in launchers
        nodes = nodes[1:]
        while nodes and isinstance(nodes[0], ast.Starred):
            nodes = nodes[1:]
        if not nodes or not (launcher or _constant(nodes[0]) == "taskset"):
            return []
    return [
        n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None for n in nodes
    ]


def _is_launcher(nodes: list[ast.expr]) -> bool:
    """Whether a list is only a launcher: ``ip netns exec NS`` and ``taskset -c N``,
    after any prefixes spread in, or nothing at all."""
    while nodes and isinstance(nodes[0], ast.Starred):
        nodes = nodes[1:]
    words = [_constant(n) for n in nodes]
    i = 0
    while i < len(words):
        if words[i] == "taskset" and words[i + 1 : i + 2] == ["-c"]:
            i += 3
        elif words[i] == "ip" and words[i + 1 : i + 3] == ["netns", "exec"]:
            i += 4
        else:
            return False
    return i == len(words)


def _launcher_names(tree: ast.AST) -> frozenset[str]:
    """The names a script binds to a launcher (and never to anything else)."""
    bound: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    value = node.value
                    launcher = isinstance(value, ast.List | ast.Tuple) and _is_launcher(value.elts)
                    bound[target.id] = bound.get(target.id, True) and launcher
    return frozenset(name for name, launcher in bound.items() if launcher)


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


def programs_in(source: str) -> set[str]:
    """The programs the command lines written in a script's ``source`` start."""
    tree = ast.parse(source)
    launchers = _launcher_names(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            found.update(_programs(_words(node.elts, launchers)))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "which":
                found.update(w for w in _words(node.args[:1]) if w)
            elif called in ("run", "popen"):  # Netns.run("ping", "-c", ...)
                found.update(_programs(_words(node.args, launchers)))
    return found


def bench_programs() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for script in sorted((REPO / "bench").glob("*.py")):
        for name in programs_in(script.read_text()):
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
                            ("ping", "stack.py"), ("taskset", "websocket.py"),
                            ("ab", "soak.py"), ("wrk", "soak.py"), ("curl", "soak.py"),
                            ("taskset", "soak.py"), ("nginx", "soak.py")]:  # fmt: skip
        assert script in found.get(program, set()), (program, found.get(program))


SPREAD = """
def ab(prefix, url):
    subprocess.run([*prefix, "ab", "-q", url])

def soak(client_prefix, lua, url):
    load = [*client_prefix, "taskset", "-c", "0"]
    subprocess.run([*load, "wrk", "-t1", "-s", lua, url])

def main(ns, work):
    prefix = ["ip", "netns", "exec", ns.name]
    other = []
    subprocess.run([*other, "curl", "-sk", url])
    podman = ["podman", "--root", work]
    subprocess.run([*podman, "load", "-q", "-i", work])
    me = [sys.executable, __file__]
    subprocess.run([*me, "serve-riad", "-x"])
"""


def test_the_scan_reads_past_a_spread_launcher_and_not_past_a_spread_program() -> None:
    assert programs_in(SPREAD) == {"ab", "wrk", "taskset", "ip", "curl", "podman"}
    # a name also bound to a program is not taken for a launcher
    assert programs_in(SPREAD + "prefix = [sys.executable]\n") == {
        "wrk",
        "taskset",
        "ip",
        "curl",
        "podman",
    }


def test_system_deps_installs_every_program_a_benchmark_starts() -> None:
    installed = system_deps_programs() | ESSENTIAL
    missing = {p: sorted(s) for p, s in bench_programs().items() if p not in installed}
    assert not missing, f"add to scripts/system-deps (command:package): {missing}"
