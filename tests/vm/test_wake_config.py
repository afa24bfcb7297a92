"""riad serve's configuration: services given as [ADDRESS:]PORT=IMAGE, the guests'
addresses, the choice of which VM to stop, and the mistakes it refuses (no VM started)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from riad.image import ImageError
from riad.targets.vm.wake import (
    WakeOptions,
    WakeServer,
    guest_address,
    least_recently_used,
    parse_spec,
)
from tests.vm.conftest import RIAD


def _image(tmp_path: Path, boot_args: list[str], network: object = None) -> Path:
    image = tmp_path / "img"
    image.mkdir(exist_ok=True)
    devices = {"network": {"kind": "virtio"} if network is None else network}
    manifest = {"boot_args": boot_args, "devices": devices}
    (image / "manifest.json").write_text(json.dumps(manifest))
    return image


def test_a_service_is_port_and_image_the_guest_port_from_the_image(tmp_path: Path) -> None:
    image = _image(tmp_path, ["--ipv4=10.0.0.2/24", "--port", "8000", "--greeting", "hi"])
    spec = parse_spec(f"8080={image}")
    assert (spec.host, spec.port, spec.guest_port) == ("127.0.0.1", 8080, 8000)
    assert spec.boot_args == ("--port", "8000", "--greeting", "hi")  # the address is the slot's
    spec = parse_spec(f"[::1]:9000={_image(tmp_path, [])}")
    assert (spec.host, spec.port, spec.guest_port, spec.name) == ("::1", 9000, 9000, "[::1]:9000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "write it as [ADDRESS:]PORT=IMAGE"),
        ("=IMG", "write it as [ADDRESS:]PORT=IMAGE"),
        ("70000=IMG", "'70000' is not a port (1-65535)"),
        ("localhost:80=IMG", "'localhost' is not an IP address"),
        ("80=missing", "is not a riad vm image (no manifest.json): build it with riad build"),
    ],
)
def test_a_malformed_service_is_refused_saying_what_to_write(
    tmp_path: Path, text: str, message: str
) -> None:
    _image(tmp_path, [])
    with pytest.raises(ImageError, match=re.escape(message)):
        parse_spec(text.replace("IMG", str(tmp_path / "img")).replace("missing", str(tmp_path)))


def test_an_image_without_a_network_cannot_be_served(tmp_path: Path) -> None:
    image = _image(tmp_path, [], network=False)
    (image / "manifest.json").write_text(json.dumps({"boot_args": [], "devices": {}}))
    assert parse_spec(f"80={image}").guest_port == 80  # devices without "network": a NIC
    (image / "manifest.json").write_text(
        json.dumps({"boot_args": [], "devices": {"network": None}})
    )
    with pytest.raises(ImageError, match="declares no network"):
        parse_spec(f"80={image}")


def test_each_service_has_a_slash_24_of_the_guest_network() -> None:
    assert str(guest_address("10.200.0.0/16", 0)) == "10.200.0.2/24"
    assert str(guest_address("10.200.0.0/16", 3)) == "10.200.3.2/24"
    with pytest.raises(ImageError, match="no room for 3 services"):
        guest_address("192.168.4.0/23", 2)
    with pytest.raises(ImageError, match="give a /24 or larger"):
        guest_address("192.168.4.0/25", 0)
    with pytest.raises(ImageError, match="--guest-net nonsense"):
        guest_address("nonsense", 0)


def test_the_least_recently_used_vm_without_a_connection_is_stopped() -> None:
    assert least_recently_used([("a", 0, 5.0), ("b", 0, 2.0), ("c", 1, 1.0)]) == "b"
    assert least_recently_used([("a", 2, 5.0), ("c", 1, 1.0)]) is None
    assert least_recently_used([]) is None


def test_the_server_refuses_a_port_twice_and_a_limit_below_one(tmp_path: Path) -> None:
    spec = parse_spec(f"8080={_image(tmp_path, [])}")
    with pytest.raises(ImageError, match=r"127.0.0.1:8080 is given twice"):
        WakeServer([spec, spec], WakeOptions())
    with pytest.raises(ImageError, match="--max-running 0: at least 1"):
        WakeServer([spec], WakeOptions(max_running=0))
    with pytest.raises(ImageError, match="--idle-timeout 0: more than 0 seconds"):
        WakeServer([spec], WakeOptions(idle_timeout_s=0))


def test_riad_serve_says_what_to_fix_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RIAD, "serve", f"8080={tmp_path}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.startswith("riad serve: error: service '8080=")
    assert "build it with riad build SERVICE -t vm --snapshot -o DIR" in done.stderr
