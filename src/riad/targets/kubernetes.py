"""``riad deploy kubernetes SERVICE``: Kubernetes manifests for a service's OCI image.

Prints (or writes with ``-o FILE``) two documents:

- a Deployment running the image ``riad build SERVICE -t oci`` makes
  (``--image``, default ``localhost/NAME:latest``), its container's ``args``
  the boot arguments given after the service plus ``--health-port``; its
  ports, the service's port arguments (``app.arg(..., riad.port)``) as the
  boot arguments leave them; liveness (``/healthz``) and readiness
  (``/readyz``) probes on riad's health endpoint; a restricted security
  context (``runAsNonRoot``, user 65534, ``readOnlyRootFilesystem``, no
  privilege escalation, every capability dropped, seccomp ``RuntimeDefault``);
  ``terminationGracePeriodSeconds`` covering ``--shutdown-timeout``; a
  memory request measured (:func:`measured_memory_mib`: the image's start-up
  traced, its peak resident memory and a quarter more), a CPU request of
  50 millicores (not measured), and a memory limit (``--memory``, raised to
  the request if below it);
- a Service selecting it, with the same ports.

``--host-ip ADDRESS`` also gives each port a ``hostPort`` bound to ``ADDRESS``
(for ``podman kube play`` on one machine: ``--host-ip 127.0.0.1``).

The documents are YAML (block style, strings quoted), which ``kubectl`` and
``podman kube play`` read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riad.app.model import App

__all__ = [
    "DEFAULT_HEALTH_PORT",
    "add_deploy_parser",
    "manifests",
    "measured_memory_mib",
    "to_yaml",
]

DEFAULT_HEALTH_PORT = 8081
DEFAULT_MEMORY_MIB = 128
_MEMORY_MARGIN = 1.25
_MEMORY_STEP_MIB = 4
_REQUEST_CPU = "50m"
_STOP_MARGIN_S = 5


def to_yaml(document: Any, indent: int = 0) -> list[str]:
    """``document`` (dicts, lists, strings, numbers, booleans) as block-style YAML lines."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(document, Mapping):
        for key, value in document.items():
            if isinstance(value, (Mapping, list)) and value:
                lines.append(f"{pad}{key}:")
                lines += to_yaml(value, indent + 2)
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(document, list):
        for item in document:
            if isinstance(item, (Mapping, list)) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(document))
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value)  # a JSON scalar is a YAML flow scalar


def manifests(
    name: str,
    image: str,
    args: Sequence[str],
    ports: Mapping[str, int],
    *,
    health_port: int,
    shutdown_timeout_s: float,
    memory_request_mib: int,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    host_ip: str | None = None,
) -> list[dict[str, Any]]:
    """The Deployment and the Service (see the module text); ``ports``: name -> port."""
    labels = {"app.kubernetes.io/name": name}
    container_ports = []
    for port_name, port in {**ports, "health": health_port}.items():
        entry: dict[str, Any] = {"name": port_name, "containerPort": port, "protocol": "TCP"}
        if host_ip is not None:
            entry |= {"hostPort": port, "hostIP": host_ip}
        container_ports.append(entry)

    def probe(path: str, period_s: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": health_port},
            "periodSeconds": period_s,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }

    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [*args, "--health-port", str(health_port)],
        "ports": container_ports,
        "livenessProbe": probe("/healthz", 10),
        "readinessProbe": probe("/readyz", 2),
        "resources": {
            "requests": {"memory": f"{memory_request_mib}Mi", "cpu": _REQUEST_CPU},
            "limits": {"memory": f"{max(memory_mib, memory_request_mib)}Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": int(shutdown_timeout_s) + _STOP_MARGIN_S,
                    "automountServiceAccountToken": False,
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports.items()
            ],
        },
    }
    return [deployment, service]


def measured_memory_mib(app: App, service: str, boot_args: Sequence[str]) -> int:
    """The memory the service's container asks for, in MiB: its start-up traced here as
    the image runs it (the entry of ``riad build -t oci`` on the host's sockets, the
    service's warm-ups included, as the build traces it), its peak resident memory (the
    interpreter's and libraries' pages included) and a quarter more, rounded up to
    4 MiB. Raises ``ConfigError`` when the start-up fails."""
    from riad.app.args import ConfigError
    from riad.image.trace import trace_startup
    from riad.targets.oci import ENTRY_MODULE
    from riad.targets.sandbox.app_entry import AppOptions

    path = [str(app.folder), *(p for p in sys.path if p)]
    with tempfile.TemporaryDirectory(prefix="riad-deploy-volumes-") as scratch:
        # the traced start-up writes to empty folders of its own, never to real volumes
        volumes = tuple((vol.name, f"{scratch}/{vol.name}") for vol in app.volumes)
        for _, folder in volumes:
            Path(folder).mkdir()
        options = AppOptions(service=service).for_trace(volumes).to_json()
        trace = trace_startup([f"{ENTRY_MODULE}:trace_entry", options, *boot_args], path=path)
    ended = trace.reason in ("raised", "returned") or trace.reason.startswith("exit")
    if trace.error is not None or ended:
        # the service ended before it served: its error, or the last error it logged
        said = (trace.error or "").strip().splitlines()
        logged = [line.partition(" ERROR ")[2] for line in trace.output.splitlines()]
        said = said or [line for line in logged if line]
        raise ConfigError(
            f"the start-up of {app.name!r} failed while its memory was measured "
            f"({trace.reason}): " + (said[0].strip() if said else "it said nothing")
        )
    if trace.peak_kb <= 0:
        raise ConfigError("the start-up's peak memory could not be read (no /proc here)")
    need = trace.peak_kb * _MEMORY_MARGIN / 1024
    return math.ceil(need / _MEMORY_STEP_MIB) * _MEMORY_STEP_MIB


def add_deploy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = sub.add_parser("deploy", help="manifests for an orchestrator (kubernetes)")
    deploy.add_argument("engine", choices=["kubernetes"], help="the orchestrator")
    deploy.add_argument("service", metavar="SERVICE", help="the service, as riad build names it")
    deploy.add_argument("--image", help="the image (default: localhost/NAME:latest, riad build)")
    deploy.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
    deploy.add_argument(
        "--health-port", type=int, default=DEFAULT_HEALTH_PORT, help="the probes' port"
    )
    deploy.add_argument(
        "--memory", type=int, default=DEFAULT_MEMORY_MIB, metavar="MIB", help="memory limit"
    )
    deploy.add_argument("--host-ip", metavar="ADDRESS", help="publish each port on ADDRESS")
    deploy.set_defaults(handler=cmd_deploy)


def cmd_deploy(args: argparse.Namespace, boot_args: list[str]) -> int:
    """``riad deploy kubernetes SERVICE [options] [boot arguments]``."""
    from riad.app.args import port
    from riad.backends.console import FdConsole
    from riad.targets.target import RunRequest, prepare_service

    prepared = prepare_service(
        RunRequest(service=args.service, boot_args=tuple(boot_args)), FdConsole(2)
    )
    if isinstance(prepared, int):
        return prepared
    app, config = prepared
    if not app.network:
        print(
            f"riad: error: service {app.name!r} has no network: nothing to probe or to route "
            "to; run its image as it is (podman run IMAGE)",
            file=sys.stderr,
        )
        return 2
    ports = {
        spec.name.removeprefix("--"): int(config.values[spec.name])
        for spec in app.args
        if spec.convert is port and config.values.get(spec.name)
    }
    if args.health_port in ports.values():
        print(
            f"riad: error: --health-port {args.health_port} is the service's own port; "
            "choose another",
            file=sys.stderr,
        )
        return 2
    from riad.app.args import ConfigError

    try:
        memory_request_mib = measured_memory_mib(app, args.service, boot_args)
    except ConfigError as exc:
        print(f"riad: error: {exc}", file=sys.stderr)
        return 2
    name = app.name.lower().replace("_", "-")
    image = args.image or f"localhost/{Path(args.service.rstrip('/')).stem.split(':')[0]}:latest"
    documents = manifests(
        name,
        image,
        boot_args,
        ports,
        health_port=args.health_port,
        shutdown_timeout_s=config.shutdown_timeout_s,
        memory_request_mib=memory_request_mib,
        memory_mib=args.memory,
        host_ip=args.host_ip,
    )
    text = "".join("---\n" + "\n".join(to_yaml(doc)) + "\n" for doc in documents)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
