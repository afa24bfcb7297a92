"""The ``oci`` target: a sealed service as an OCI image (``riad build SERVICE -t oci``).

The image has one layer: the interpreter and the shared libraries it and its
extension modules load (at the paths the loader looks for them), the
standard library modules the service imports (tree-shaken, at
``/usr/lib/python3.X``), the service and the packages it imports
(``/app/lib``), each as its source and an unchecked-hash ``.pyc``, and the
data files its start-up read. What to take is found as the sandbox target
finds it for its seal (:func:`riad.targets.sandbox.imports.plan_imports`: a
traced start-up, its warm-ups, declared lazy imports), tracing the start-up
the container really runs (:func:`trace_entry`: this entry on the host's
sockets, not the sandbox's on riad's stack over a TAP), plus what the seal
imports. No shell, no package manager: nothing but that.

The image runs as user ``65534`` (nobody). Its entrypoint is this module:
``podman run IMAGE --port 8080 --health-port 8081`` hands the boot arguments
to the service, which serves on the container's own sockets (the ``unix``
target's socket stack). Once start-up is over (the event loop first waits)
it seals itself with what a container allows without privileges
(:func:`seal_in_container`), the seccomp allowlist of :func:`container_policy`
last, and says once, in one line, what it applied and what the container's
runtime prevented; it never refuses to start because the engine isolates it
already. ``--seal enforce|audit|off`` (taken by the entry) chooses what a call
outside the allowlist gets: the service killed, ``EPERM``, or no allowlist.

Reproducible: files sorted, owned by 0:0, dated ``SOURCE_DATE_EPOCH`` (0 when
unset); the same inputs give the same layer, config and manifest digests.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import json
import os
import socket
import sys
import sysconfig
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from riad.targets.sandbox.inplace import in_place_policy
from riad.targets.sandbox.policy import ArgIn, ArgMaskedEq, Deny, Policy, SyscallRule
from riad.targets.sandbox.profile import DeviceFds

__all__ = ["APP_LIB", "PLAN_FILE", "OciBuild", "build_oci", "main", "seal_in_container"]

APP_LIB = "/app/lib"
"""Where the service and the packages it imports are, in the image (``PYTHONPATH``)."""
KV_DIR = "/app/kv"
"""The service's key-value stores in the image, one folder per store."""
PLAN_FILE = "/app/seal.json"
"""What the entry imports before the seal and leaves readable after it."""
USER = "65534:65534"
ENTRY_MODULE = "riad.targets.oci"
ENTRY_IMPORTS = (ENTRY_MODULE, "riad.targets.sandbox.seal")
"""What the entry imports past its traced start-up: the seal."""


# -- the entry: runs inside the container ----------------------------------------------


SEAL_MODES = ("enforce", "audit", "off")
"""The entry's ``--seal`` boot argument: the seccomp allowlist's refusals kill the
service (``enforce``, the default), fail with ``EPERM`` (``audit``: the kernel logs
each), or no allowlist (``off``: the engine's profile alone)."""

FIONBIO = 0x5421
SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000


def container_policy(loop: asyncio.AbstractEventLoop, deny: Deny, *, threads: bool) -> Policy:
    """The seccomp allowlist of a service on the container's own sockets.

    The vm's in-place policy (:func:`riad.targets.sandbox.inplace.in_place_policy`, the
    sandbox's service policy: no exec, no process, no executable memory, the loop's
    descriptors, files only for reading) with the calls of the kernel's sockets in
    place of a device's: each connection is a descriptor the kernel numbers as it
    comes, so the calls on connections take any descriptor; new sockets only of the
    Internet families, stream or datagram (no Unix, netlink, packet or raw socket);
    ``ioctl`` also sets a socket non-blocking (``FIONBIO``), and only that.
    """
    base = in_place_policy(
        DeviceFds.for_loop(loop, ()), deny, console_in=None, data=True, threads=threads
    )
    anything = "on the connections, numbered by the kernel as they come"
    socket_rules = [
        *(SyscallRule(call, (), anything) for call in _CONNECTION_CALLS),
        SyscallRule("accept4", (), "take a connection from a listener"),
        SyscallRule(
            "socket",
            (
                ArgIn(0, (socket.AF_INET, socket.AF_INET6), ("AF_INET", "AF_INET6")),
                ArgMaskedEq(1, ~(SOCK_NONBLOCK | SOCK_CLOEXEC | 3) & 0xFFFFFFFF, 0, "type bits"),
            ),
            "open an Internet socket, stream or datagram (raw needs CAP_NET_RAW: none)",
        ),
    ]
    rules = [rule for rule in base.rules if rule.name not in {r.name for r in socket_rules}]
    for i, rule in enumerate(rules):
        if rule.name == "ioctl":
            (check,) = rule.args
            assert isinstance(check, ArgIn)
            values, labels = (*check.values, FIONBIO), (*check.labels, "FIONBIO")
            rules[i] = SyscallRule("ioctl", (ArgIn(1, values, labels),), rule.why)
    return Policy((*rules, *socket_rules), deny)


_CONNECTION_CALLS = (
    "recvfrom",
    "sendto",
    "read",
    "write",
    "readv",
    "writev",
    "recvmsg",
    "sendmsg",
    "connect",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "shutdown",
)


def seal_in_container(
    readable: Sequence[str],
    threads: int,
    mode: str = "enforce",
    loop: asyncio.AbstractEventLoop | None = None,
) -> list[str]:
    """Seal the running service with what needs no privilege; return what was done and
    what the container's runtime prevented, one item each.

    Capabilities dropped (securebits locked), ``no_new_privs``, no core dumps,
    resource limits, Landlock (only the data files readable) where the kernel
    has it, and last the seccomp allowlist of :func:`container_policy` (unless
    ``mode`` is ``off``). New namespaces (and so the sandbox's empty root) are
    tried and reported when the runtime refuses them; so is any step the runtime
    prevents, and the service goes on (the engine isolates it already).
    """
    from riad.targets.sandbox import linux
    from riad.targets.sandbox.seal import (
        Limits,
        SealError,
        apply_landlock,
        drop_capabilities,
        enter_namespaces,
        install_filter,
        set_limits,
    )

    done: list[str] = []
    try:
        enter_namespaces(("ipc", "uts"))
        done.append("namespaces: new ipc, uts")
    except SealError as exc:
        cause = exc.__cause__
        why = cause.strerror if isinstance(cause, OSError) else str(exc)
        done.append(f"prevented by the container's runtime: new namespaces ({why})")
    try:
        drop_capabilities()
        done.append("capabilities: none (securebits locked)")
    except SealError as exc:
        if _no_capabilities():
            done.append("capabilities: none (the container's runtime gave none)")
        else:
            done.append(f"prevented by the container's runtime: dropping capabilities ({exc})")
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    done.append("no_new_privs")
    limits = Limits(memory_bytes=None, open_files=_open_files(), threads=threads)
    try:
        set_limits(limits)
        done.append(f"limits: {limits.open_files} files, {threads} new threads, no core")
    except OSError as exc:
        done.append(f"prevented by the container's runtime: limits ({exc.strerror})")
    try:
        done.append(apply_landlock((), tuple(readable), tcp=False))
    except SealError as exc:
        done.append(f"prevented by the container's runtime: {exc}")
    if mode == "off":
        done.append("seccomp: the engine's own (--seal off)")
        return done
    deny = Deny.KILL if mode == "enforce" else Deny.ERRNO
    policy = container_policy(loop or asyncio.get_running_loop(), deny, threads=threads > 0)
    try:
        install_filter(policy, all_threads=True)
        done.append(f"seccomp ({mode}): {policy.describe()[-1]}, else {deny.value}")
    except SealError as exc:
        done.append(f"prevented by the container's runtime: {exc}")
    return done


def _no_capabilities() -> bool:
    """Whether this process holds no capability it could use (effective, permitted,
    inheritable and ambient sets all empty)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    sets = {
        key: int(value, 16)
        for key, _, value in (line.partition(":\t") for line in status.splitlines())
        if key in ("CapInh", "CapPrm", "CapEff", "CapAmb")
    }
    return len(sets) == 4 and not any(sets.values())


def _open_files() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(x for x in (soft, hard, 65536) if x != resource.RLIM_INFINITY)


def _split_seal_arg(args: Sequence[str]) -> tuple[str, list[str]]:
    """Take ``--seal MODE`` out of the entry's boot arguments: the mode and the rest."""
    from riad import bootargs
    from riad.app.args import ConfigError

    found, rest = bootargs.split(args, {"--seal": "|".join(SEAL_MODES)})
    mode = found.get("--seal") or "enforce"
    if mode not in SEAL_MODES:
        raise ConfigError(f"--seal {mode}: choose {', '.join(SEAL_MODES)}")
    return mode, rest


def main(argv: Sequence[str] | None = None) -> int:
    """The image's entrypoint: ``SERVICE [boot arguments...]``, run and sealed."""
    from riad.app.args import ConfigError
    from riad.app.run import report_config_error
    from riad.backends.console import FdConsole

    console = FdConsole(2)
    try:
        mode, args = _split_seal_arg(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        return report_config_error(exc, console)
    plan = json.loads(Path(PLAN_FILE).read_text())
    return _serve(plan["service"], plan.get("kv", ()), args, (plan, mode))


def trace_entry(argv: list[str]) -> None:
    """The start-up the build traces (:func:`build_oci`): the entry's own, on the host's
    sockets as in the container, unsealed, with the first uses done as before the seal;
    the warm-ups ask ``127.0.0.1`` in the trace's namespace. ``argv``: the sandbox's
    :class:`~riad.targets.sandbox.app_entry.AppOptions` as JSON (read here as plain
    JSON: that module's riad stack is not the container's), then the boot arguments."""
    options = json.loads(argv[0])
    _serve(options["service"], options.get("kv", ()), argv[1:], None)


def _serve(
    service: str,
    kv: Sequence[str],
    args: Sequence[str],
    sealed: tuple[Mapping[str, Any], str] | None,
) -> int:
    """Run ``service`` on the host's sockets; ``sealed``: the image's plan and the seal's
    mode, applied once start-up is over (None: a traced start-up, never sealed)."""
    from riad.app.args import ConfigError
    from riad.app.lifecycle import Lifecycle
    from riad.app.run import report_config_error
    from riad.app.run import run as run_app
    from riad.backends.console import FdConsole
    from riad.image.idle import install_idle_hook
    from riad.targets.sandbox.warmup import import_modules, warm_up
    from riad.targets.target import RunRequest, prepare_service
    from riad.targets.unix import _stack_opener, open_kvs

    console = FdConsole(2)
    request = RunRequest(service=service, boot_args=tuple(args), net="socket")
    prepared = prepare_service(request, console, help_console=FdConsole(1))
    if isinstance(prepared, int):
        return prepared
    app, config = prepared
    try:
        kvs = open_kvs(app, kv)
        open_stack = _stack_opener(app, config, request)
    except ConfigError as exc:
        return report_config_error(exc, console)

    if sealed is None:
        from riad.image.exercise import note_warmup

        warm_up(trace=True)
        note_warmup(app, config, address="127.0.0.1", link="lo")
        return run_app(app, config, open_stack=open_stack, kvs=kvs, console=console)
    plan, mode = sealed
    lifecycle = Lifecycle(config.shutdown_timeout_s)
    sealing = lifecycle.hold("the seal")

    def seal() -> None:
        import gc
        import time

        began, loaded = time.monotonic(), len(sys.modules)
        for failure in import_modules(plan["imports"]):
            console.write_line(f"riad: note: not imported before the seal: {failure}")
        warm_up()
        first = f"{len(sys.modules) - loaded} modules imported first, "
        first += f"{(time.monotonic() - began) * 1000:.0f} ms"
        steps = seal_in_container(plan["readable"], app.threads, mode)
        console.write_line(f"riad: sealed in the container ({first}): " + "; ".join(steps))
        sealing.release()
        gc.collect()
        gc.freeze()

    return run_app(
        app,
        config,
        open_stack=open_stack,
        kvs=kvs,
        console=console,
        main_started=lambda: install_idle_hook(seal, idle_ms=0),
        lifecycle=lifecycle,
    )


# -- the build: runs on the host -----------------------------------------------------


@dataclass
class OciBuild:
    """What went into an image and its digests."""

    files: dict[str, bytes] = field(default_factory=dict)
    """Image path (no leading /) -> content."""
    executable: set[str] = field(default_factory=set)
    manifest_digest: str = ""
    layer_bytes: int = 0


STDLIB = f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}"
"""The standard library in the image, beside the interpreter's ``/usr/bin/python3``."""
INTERPRETER = "/usr/bin/python3"


def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(sorted({Path(paths[key]).resolve() for key in ("stdlib", "platstdlib")}))


def _image_path(file: Path, roots: Sequence[Path]) -> str:
    """Where host file ``file`` (a module or package data) goes in the image: the
    standard library's under :data:`STDLIB`, the rest under :data:`APP_LIB`."""
    file = file.resolve()
    for std in _stdlib_dirs():
        if file.is_relative_to(std) and not any(
            file.is_relative_to(r) and r.is_relative_to(std) and r.name.endswith("-packages")
            for r in roots
        ):
            return f"{STDLIB}/{file.relative_to(std).as_posix()}"
    for root in roots:
        if file.is_relative_to(root):
            return f"{APP_LIB}/{file.relative_to(root).as_posix()}"
    raise ValueError(f"{file} is on no folder of the import path")


def _module_files(names: Iterable[str], path: Sequence[str]) -> list[Path]:
    """The files of modules ``names`` (packages: their ``__init__``), found on ``path``."""
    import importlib.machinery

    found: list[Path] = []
    for name in names:
        parent, _, leaf = name.rpartition(".")
        search: list[str] | None = list(path)
        if parent:
            spec_parent = _find(parent, path)
            search = list(spec_parent.submodule_search_locations or []) if spec_parent else None
        if search is None:
            continue
        spec = importlib.machinery.PathFinder.find_spec(leaf, search)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        assert spec.origin is not None
        found.append(Path(spec.origin))
    return found


def _find(name: str, path: Sequence[str]) -> ModuleSpec | None:
    import importlib.machinery

    search = list(path)
    spec = None
    for part in name.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    return spec


def _closure(names: Sequence[str], path: Sequence[str]) -> tuple[list[str], list[str]]:
    """What importing the entry, the socket stack and ``names`` loads, from a fresh
    interpreter on ``path``; and which of ``names`` imported."""
    import subprocess

    code = (
        "import importlib, json, sys\n"
        f"for name in {list(ENTRY_IMPORTS)!r}: importlib.import_module(name)\n"
        "ok = []\n"
        f"for name in {list(names)!r}:\n"
        "    try: importlib.import_module(name)\n"
        "    except Exception: continue\n"
        "    ok.append(name)\n"
        "print(json.dumps([sorted(sys.modules), ok]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    loaded, imported = json.loads(done.stdout)
    return list(loaded), list(imported)


def collect(
    modules: Iterable[str],
    data: Iterable[str],
    service_root: Path,
    path: Sequence[str],
    sources: Iterable[Path] = (),
) -> tuple[OciBuild, list[str]]:
    """The image's files: interpreter, libraries, modules (source and ``.pyc``), data.
    Returns them and the data files' image paths."""
    from riad.image.elf import elf_info, shared_libraries
    from riad.targets.vm.build import SYSTEM_LIB_DIRS, _strip

    roots = sorted(
        {Path(p).resolve() for p in [str(service_root), *path] if p and Path(p).is_dir()},
        key=lambda root: len(root.parts),
        reverse=True,
    )
    out = OciBuild()
    interpreter = Path(sys.executable).resolve()
    out.files[INTERPRETER.lstrip("/")] = _strip(interpreter.read_bytes(), False)
    out.executable.add(INTERPRETER.lstrip("/"))
    binaries = [interpreter]
    to_compile: dict[str, tuple[bytes, str]] = {}
    module_files = _module_files(sorted(set(modules)), [str(r) for r in roots])
    for file in [*sources, *(f for f in module_files if f not in set(sources))]:
        where = _image_path(file, roots).lstrip("/")
        content = file.read_bytes()
        out.files[where] = content
        if file.suffix == ".py":
            cache = Path(where).parent / "__pycache__"
            pyc = f"{Path(where).stem}.{sys.implementation.cache_tag}.pyc"
            to_compile[(cache / pyc).as_posix()] = (content, "/" + where)
        else:
            binaries.append(file)
            out.files[where] = _strip(content, True)
            out.executable.add(where)
    out.files.update(_compile_all(to_compile))
    loader = elf_info(interpreter).interpreter
    for binary in binaries:
        for name, library in shared_libraries(binary).items():
            if name.startswith("/") or name == loader:
                at = name
            elif str(library.parent) in SYSTEM_LIB_DIRS:
                at = f"{library.parent}/{name}"
            else:
                at = f"/usr/lib/{name}"
            if at.lstrip("/") not in out.files:
                out.files[at.lstrip("/")] = _strip(library.read_bytes(), True)
                out.executable.add(at.lstrip("/"))
    readable = []
    for host in data:
        try:
            where = _image_path(Path(host), roots)
        except ValueError:
            where = Path(host).as_posix()  # the host's data (zoneinfo, the CA bundle)
        out.files[where.lstrip("/")] = Path(host).read_bytes()
        readable.append(where)
    return out, readable


_COMPILE = (
    "import importlib.util, marshal, sys\n"
    "from importlib._bootstrap_external import _code_to_hash_pyc\n"
    "out = []\n"
    "for source, path in marshal.load(sys.stdin.buffer):\n"
    "    code = compile(source, path, 'exec', dont_inherit=True)\n"
    "    out.append(bytes(_code_to_hash_pyc(code, importlib.util.source_hash(source), False)))\n"
    "sys.stdout.buffer.write(marshal.dumps(out))\n"
)


def _compile_all(sources: Mapping[str, tuple[bytes, str]]) -> dict[str, bytes]:
    """Unchecked-hash ``.pyc`` files of ``{pyc path: (source, module path)}``, compiled in
    a fresh interpreter, in order: ``marshal`` writes a shared object once and refers
    back to it by how the interpreter happens to hold it, so the same sources give the
    same bytes only from the same fresh start."""
    import marshal
    import subprocess

    names = sorted(sources)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _COMPILE],
        input=marshal.dumps([sources[name] for name in names]),
        capture_output=True,
        check=True,
    )
    return dict(zip(names, marshal.loads(done.stdout), strict=True))


@dataclass(frozen=True)
class Owner:
    """Who owns the files under ``under`` in a layer, and their mode (the rest: 0:0)."""

    under: str
    uid: int
    gid: int
    mode: int


def _tar(
    files: Mapping[str, bytes], executable: set[str], epoch: int, owner: Owner | None = None
) -> bytes:
    """One layer: every file and its folders, sorted, owned by 0:0 (or ``owner``), dated
    ``epoch``."""
    folders = {p.as_posix() for name in files for p in Path(name).parents if p.as_posix() != "."}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(folders | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            owned = owner is not None and (name + "/").startswith(owner.under + "/")
            if owned:
                assert owner is not None
                info.uid, info.gid = owner.uid, owner.gid
            if name in files:
                info.size = len(files[name])
                info.mode = 0o755 if name in executable else 0o644
                if owned:
                    assert owner is not None
                    info.mode = owner.mode
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
    return buffer.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return digest


def build_oci(
    service: str, boot_args: Sequence[str], *, name: str, include: Sequence[str] = ()
) -> tuple[dict[str, bytes], OciBuild]:
    """The OCI image layout of ``service`` (``{path in the layout: content}``)."""
    from riad.app.args import ConfigError
    from riad.backends.console import FdConsole
    from riad.image.data import submodules
    from riad.targets.sandbox.app_entry import AppOptions
    from riad.targets.sandbox.imports import LATE_IMPORTS, plan_imports
    from riad.targets.target import RunRequest, prepare_service

    prepared = prepare_service(
        RunRequest(service=service, boot_args=tuple(boot_args)), FdConsole(2)
    )
    if isinstance(prepared, int):
        raise ConfigError(f"service {service!r} did not load (above)")
    app, _ = prepared
    plan = plan_imports(
        app,
        AppOptions(service=service),
        boot_args,
        include=include,
        entry=f"{ENTRY_MODULE}:trace_entry",
        # the sandbox's but riad's stack's (its DHCP client): the kernel's sockets serve
        late=[name for name in LATE_IMPORTS if not name.startswith("riad.stack.")],
    )
    path = [str(app.folder), *(p for p in sys.path if p)]
    loaded, imports = _closure(plan.modules, path)
    modules = set(loaded)
    modules |= {parent for m in modules for parent in _parents(m)}
    modules |= set(submodules("encodings.*", path))
    sources = [app.source_path] if app.source_path is not None else []
    content, readable = collect(modules, plan.data, app.folder.resolve(), path, sources)
    stores = _add_stores(app, content.files)
    readable += [f"/{name}" for name in content.files if name.startswith(KV_DIR.lstrip("/"))]
    spec = _service_spec(app, plan_service=service)
    seal_plan = {
        "service": spec,
        "imports": imports,
        "readable": sorted(readable),
        "kv": stores,
    }
    content.files[PLAN_FILE.lstrip("/")] = json.dumps(seal_plan, indent=1).encode()
    image_config = {
        "User": USER,
        "Entrypoint": [INTERPRETER, "-S", "-B", "-m", ENTRY_MODULE],
        "Env": [f"PYTHONPATH={APP_LIB}", "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"],
        "WorkingDir": APP_LIB,
    }
    layout = image_layout(content, name, image_config, "riad build -t oci")
    return layout, content


def image_layout(
    content: OciBuild,
    name: str,
    image_config: Mapping[str, Any],
    created_by: str,
    owner: Owner | None = None,
) -> dict[str, bytes]:
    """The OCI image layout (``{path: bytes}``) of one layer holding ``content``'s files
    (``owner``'s under its folder), named ``name``; sets ``content``'s digest and layer
    size."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    layer = _tar(content.files, content.executable, epoch, owner)
    content.layer_bytes = len(layer)
    blobs: dict[str, bytes] = {}
    layer_digest = _blob(blobs, layer)
    created = _rfc3339(epoch)
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {**image_config, "Labels": {"org.opencontainers.image.title": name}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created, "created_by": created_by}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = _blob(blobs, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    content.manifest_digest = _blob(blobs, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": content.manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }
        ],
    }
    layout = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True, separators=(",", ":")).encode(),
    }
    for digest, data in blobs.items():
        layout[f"blobs/sha256/{digest.removeprefix('sha256:')}"] = data
    return layout


def _add_stores(app: object, files: dict[str, bytes]) -> list[str]:
    """Put the service's stores in the image under :data:`KV_DIR` (a folder's files, or
    a packed file); return the ``NAME=PATH`` the entry opens them with."""
    from riad.app.args import ConfigError
    from riad.app.model import App
    from riad.targets.unix import kv_sources

    assert isinstance(app, App)
    given = []
    for decl, source in kv_sources(app).items():
        if source is None or not source.exists():
            if decl.writable:
                continue  # it starts empty
            raise ConfigError(
                f"key-value store {decl.name!r}: {source} not found; create it before the build"
            )
        where = f"{KV_DIR}/{decl.name}"
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                files[f"{where}/{file.relative_to(source).as_posix()}".lstrip("/")] = (
                    file.read_bytes()
                )
        else:
            where = f"{where}/{source.name}"
            files[where.lstrip("/")] = source.read_bytes()
        given.append(f"{decl.name}={where}")
    return given


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _service_spec(app: object, plan_service: str) -> str:
    """The service as the entry names it in the image: its file under :data:`APP_LIB`
    (and ``:attr`` when the build named one)."""
    from riad.app.model import App

    assert isinstance(app, App)
    source = app.source_path
    if source is None:
        return plan_service
    relative = source.resolve().relative_to(app.folder.resolve()).as_posix()
    attr = plan_service.rpartition(":")[2] if ":" in plan_service else ""
    if attr and not Path(plan_service).exists():
        return f"{APP_LIB}/{relative}:{attr}"
    return f"{APP_LIB}/{relative}"


def _rfc3339(epoch: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_layout(layout: Mapping[str, bytes], out: Path) -> None:
    """The image layout as a folder."""
    for name, data in layout.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def write_archive(layout: Mapping[str, bytes], file: Path, epoch: int = 0) -> None:
    """The image layout as a tar archive (``podman load``, ``docker load``)."""
    file.write_bytes(_tar(layout, set(), epoch))


CONTAINER_DISK_DIR = "/disk"
"""Where a vm image's files are in its containerDisk image (KubeVirt reads ``/disk``)."""
CONTAINER_DISK_OWNER = Owner(CONTAINER_DISK_DIR.lstrip("/"), 107, 107, 0o440)
"""KubeVirt's containerDisk files: owned by its ``qemu`` user (107:107), read-only."""


def container_disk(image_dir: Path, name: str) -> tuple[dict[str, bytes], OciBuild]:
    """The OCI image layout of a built vm image (``riad build -t vm -o DIR``): its files
    under :data:`CONTAINER_DISK_DIR`, owned 107:107 and mode 0440 as KubeVirt asks, for
    KubeVirt (a kernel boot names the kernel and the initramfs there). No entrypoint: the image is data for the VM's launcher."""
    content = OciBuild()
    for file in sorted(p for p in image_dir.rglob("*") if p.is_file()):
        where = f"{CONTAINER_DISK_DIR}/{file.relative_to(image_dir).as_posix()}"
        content.files[where.lstrip("/")] = file.read_bytes()
    if not content.files:
        raise ValueError(f"{image_dir}: no vm image there")
    layout = image_layout(content, name, {}, "riad build -t vm --oci", CONTAINER_DISK_OWNER)
    return layout, content


def cmd_build(
    service: str,
    boot_args: Sequence[str],
    *,
    output: str | None,
    archive: str | None,
    include: Sequence[str] = (),
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> int:
    """``riad build SERVICE -t oci [-o DIR | --archive FILE]``."""
    if (output is None) == (archive is None):
        say("riad: error: -t oci: give -o DIR (an image layout) or --archive FILE (podman load)")
        return 2
    name = Path(service.rstrip("/")).stem.split(":")[0] or "service"
    layout, content = build_oci(
        service, boot_args, name=f"localhost/{name}:latest", include=include
    )
    if output is not None:
        write_layout(layout, Path(output))
    if archive is not None:
        write_archive(layout, Path(archive))
    say(
        f"riad: OCI image localhost/{name}:latest: {len(content.files)} files, layer "
        f"{content.layer_bytes / (1 << 20):.1f} MiB, manifest {content.manifest_digest}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.exit(1)
