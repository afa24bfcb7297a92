"""riad build -t oci -o DIR: an OCI image layout of one layer, with nothing but the service.

The echo example is built twice, once as an image layout (``-o DIR``) and
once as an archive (``--archive FILE``), without an engine: the layout's
blobs are named by their own SHA-256 and sized as the manifest says; the
image has one layer, runs as user 65534 and enters riad's container entry;
the layer holds no shell and no package manager (its only programs are the
interpreter and the loader), every entry owned by 0:0 and dated the epoch;
and the archive's index names the layout's manifest (the same inputs, the
same digest). A service's store, read from a folder, is carried file for file
and named to the entry by the seal's plan.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from riad.testing.process import riad_command

REPO = Path(__file__).resolve().parents[2]
SHELLS = ("sh", "bash", "dash", "busybox", "ash", "zsh")
PACKAGE_MANAGERS = ("apt", "apt-get", "dpkg", "pip", "pip3", "ensurepip", "yum", "apk")


def _build(*output: str, service: Path = REPO / "examples/echo") -> str:
    done = subprocess.run(
        riad_command("build", str(service), "-t", "oci", *output),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def _blob(layout: Path, descriptor: dict[str, object]) -> bytes:
    digest = str(descriptor["digest"])
    assert digest.startswith("sha256:")
    data = (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert len(data) == descriptor["size"]
    return data


def test_the_layout_is_one_layer_with_the_interpreter_and_the_service_alone(
    tmp_path: Path,
) -> None:
    layout = tmp_path / "layout"
    said = _build("-o", str(layout))
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "localhost/echo:latest"
    assert entry["digest"] in said
    manifest = json.loads(_blob(layout, entry))
    config = json.loads(_blob(layout, manifest["config"]))
    (layer_descriptor,) = manifest["layers"]
    layer = _blob(layout, layer_descriptor)
    assert config["rootfs"]["diff_ids"] == [layer_descriptor["digest"]]

    assert config["config"]["User"] == "65534:65534"
    entrypoint = config["config"]["Entrypoint"]
    assert entrypoint[0] == "/usr/bin/python3" and entrypoint[-2:] == ["-m", "riad.targets.oci"]

    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = tar.getmembers()
    names = {member.name for member in members}
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}
    assert "usr/bin/python3" in names and "app/seal.json" in names
    assert "app/lib/service.py" in names
    for name in names:
        base = name.rsplit("/", 1)[-1]
        assert base not in SHELLS, name
        assert base not in PACKAGE_MANAGERS, name
        assert "/site-packages/pip/" not in name and "/ensurepip/" not in name, name
    programs = sorted(
        m.name for m in members if m.isfile() and m.mode & 0o111 and ".so" not in m.name
    )
    assert programs == ["usr/bin/python3"], programs

    archive = tmp_path / "echo.tar"
    _build("--archive", str(archive))
    with tarfile.open(archive) as tar:
        archived = tar.extractfile("index.json")
        assert archived is not None
        assert json.load(archived)["manifests"][0]["digest"] == entry["digest"]


def test_a_store_s_files_are_in_the_layer_and_named_to_the_entry(tmp_path: Path) -> None:
    """The service's data: a store read from a folder is carried under /app/kv/NAME, file
    for file, and the seal's plan hands it to the entry as NAME=/app/kv/NAME."""
    service = tmp_path / "pages"
    (service / "pages" / "css").mkdir(parents=True)
    (service / "pages" / "index.html").write_bytes(b"<h1>hello</h1>\n")
    (service / "pages" / "css" / "site.css").write_bytes(b"h1 { color: teal }\n")
    (service / "service.py").write_text(
        "import riad\n"
        "app = riad.App('pages', network=True)\n"
        "app.kv('pages', source='pages')\n"
        "@app.main\n"
        "async def main(dev):\n"
        "    page = await dev.kv('pages').get('index.html')\n"
        "    dev.log.info('page', bytes=len(page))\n"
        "    await dev.wait_for_shutdown()\n"
    )
    layout = tmp_path / "layout"
    _build("-o", str(layout), service=service)
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads(_blob(layout, entry))
    (layer_descriptor,) = manifest["layers"]
    with tarfile.open(fileobj=io.BytesIO(_blob(layout, layer_descriptor))) as tar:
        files = {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }
    assert files["app/kv/pages/index.html"] == b"<h1>hello</h1>\n"
    assert files["app/kv/pages/css/site.css"] == b"h1 { color: teal }\n"
    plan = json.loads(files["app/seal.json"])
    assert plan["kv"] == ["pages=/app/kv/pages"]
    assert "/app/kv/pages/index.html" in plan["readable"]
