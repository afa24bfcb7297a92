"""Which data files a sealed service takes, and where; what ``--include`` names."""

from __future__ import annotations

from pathlib import Path

import pytest

from riad.image import ImageError
from riad.image.data import data_files, left_out, placed, split_includes, submodules
from riad.image.trace import StartupTrace


def _trace(opened: list[str], started: list[str] | None = None) -> StartupTrace:
    return StartupTrace(
        modules={},
        mapped_files=(),
        error=None,
        reason="idle",
        opened=tuple(opened),
        opened_by={"started": frozenset(started if started is not None else opened)},
        phases={"started": frozenset()},
    )


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A service folder, a site-packages folder and a host folder, with files in each."""
    service, packages, host = tmp_path / "service", tmp_path / "site", tmp_path / "etc"
    for folder in (service / "templates", packages / "pkg" / "static", host):
        folder.mkdir(parents=True)
    (service / "templates" / "index.html").write_text("index")
    (service / "templates" / "other.html").write_text("other")
    (service / "app.py").write_text("")
    (packages / "pkg" / "static" / "base.css").write_text("css")
    (packages / "pkg" / "mod.py").write_text("")
    (host / "secret").write_text("not the service's")
    (host / "link.css").symlink_to(packages / "pkg" / "static" / "base.css")
    return service, packages, host


def test_files_read_under_the_service_and_its_packages_are_taken(
    tree: tuple[Path, Path, Path],
) -> None:
    service, packages, host = tree
    opened = [
        str(service / "templates" / "index.html"),
        str(packages / "pkg" / "static" / "base.css"),
        str(packages / "pkg" / "mod.py"),  # a module: compiled, not data
        str(host / "secret"),  # the host's: not taken
        "/proc/self/maps",
    ]
    trace = _trace(opened, started=opened[:1])
    found = data_files(trace, service, [str(packages)])
    assert [(d.where, d.rel, d.why) for d in found] == [
        ("service", "templates/index.html", "start-up"),
        ("packages", "pkg/static/base.css", "warm-up"),
    ]
    assert left_out(trace, found) == [str(host / "secret")]


def test_a_file_is_taken_at_the_path_it_was_opened_by(tree: tuple[Path, Path, Path]) -> None:
    service, packages, host = tree
    # opened through a link from under the packages: kept where the link is
    link = packages / "pkg" / "static" / "alias.css"
    link.symlink_to(packages / "pkg" / "static" / "base.css")
    found = data_files(_trace([str(link)]), service, [str(packages)])
    assert [(d.where, d.rel) for d in found] == [("packages", "pkg/static/alias.css")]
    # a link elsewhere to a package's file: taken as the file it points to
    found = data_files(_trace([str(host / "link.css")]), service, [str(packages)])
    assert [(d.where, d.rel) for d in found] == [("packages", "pkg/static/base.css")]


def test_the_time_zone_database_is_taken_where_the_standard_library_reads_it() -> None:
    zone = Path("/usr/share/zoneinfo/UTC")
    if not zone.exists():
        pytest.fail("the host has no time zone database: apt-get install tzdata")
    found = data_files(_trace([str(zone)]), Path("/nonexistent"), [])
    assert [(d.where, d.rel) for d in found] == [("host", "/usr/share/zoneinfo/UTC")]


def test_include_takes_a_folder_or_a_file(
    tree: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, packages, host = tree
    found = data_files(None, service, [str(packages)], ["templates/", str(host / "secret")],
                       base=service)  # fmt: skip
    assert [(d.where, d.rel, d.why) for d in found] == [
        ("host", str(host / "secret"), "declared"),
        ("service", "templates/index.html", "declared"),
        ("service", "templates/other.html", "declared"),
    ]
    with pytest.raises(ImageError, match="no such file or folder"):
        data_files(None, service, [], ["./missing/"], base=service)


def test_placed_says_where_a_file_would_go(tree: tuple[Path, Path, Path]) -> None:
    service, packages, _ = tree
    miss = placed(str(packages / "pkg" / "templates" / "404.html"), service, [str(packages)])
    assert miss is not None and (miss.where, miss.rel) == ("packages", "pkg/templates/404.html")
    assert placed("/nowhere/at/all", service, [str(packages)]) is None


def test_split_includes_tells_modules_from_paths() -> None:
    assert split_includes(["json", "django.*", "static/", "./x.toml", "/etc/y"]) == (
        ["json", "django.*"],
        ["static/", "./x.toml", "/etc/y"],
    )
    with pytest.raises(ImageError, match="give a module"):
        split_includes(["not a module"])


def test_submodules_of_a_package_without_importing_it(tree: tuple[Path, Path, Path]) -> None:
    _, packages, _ = tree
    (packages / "pkg" / "__init__.py").write_text("raise RuntimeError('never imported')")
    (packages / "pkg" / "sub").mkdir()
    (packages / "pkg" / "sub" / "__init__.py").write_text("")
    (packages / "pkg" / "sub" / "deep.py").write_text("")
    assert submodules("pkg.*", [str(packages)]) == ["pkg", "pkg.mod", "pkg.sub", "pkg.sub.deep"]
    assert submodules("plain", []) == ["plain"]
    with pytest.raises(ImageError, match="no package 'nothing'"):
        submodules("nothing.*", [str(packages)])
