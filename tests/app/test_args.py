"""Boot arguments: both spellings, defaults, every mistake named with its fix."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

import pytest

from riad.app import App, ConfigError, HelpRequested, port
from riad.log import DEBUG, INFO, LogLevels


def _app() -> App:
    app = App("svc")
    app.arg("--port", port, default=7, help="TCP port")
    app.arg("--name", str, help="who")  # required
    app.arg("--ratio", float, default=0.5)
    app.arg("--mode", str, default="fast", choices=["fast", "slow"])
    app.flag("--verbose")
    return app


def test_defaults_and_values() -> None:
    config = _app().parse_args(["--name", "x"])
    assert config.values == {
        "--port": 7,
        "--name": "x",
        "--ratio": 0.5,
        "--mode": "fast",
        "--verbose": False,
    }
    assert config.net.ipv4 is None and not config.net.dhcp
    assert config.logs == LogLevels()
    assert config.argv == ("--name", "x")


def test_both_spellings_and_last_wins() -> None:
    config = _app().parse_args(
        ["--name=a b", "--port", "80", "--port=8080", "--verbose", "--ratio", "-1.5"]
    )
    assert config.values["--name"] == "a b"
    assert config.values["--port"] == 8080
    assert config.values["--verbose"] is True
    assert config.values["--ratio"] == -1.5


def test_riad_arguments() -> None:
    config = _app().parse_args(
        [
            "--name=x",
            "--ipv4",
            "10.0.0.2/24",
            "--ipv4-gateway=10.0.0.1",
            "--logs",
            "*:info,tcp:debug",
        ]
    )
    assert config.net.ipv4 == IPv4Interface("10.0.0.2/24")
    assert config.net.gateway == IPv4Address("10.0.0.1")
    assert config.logs.default == INFO and config.logs.by_source == {"tcp": DEBUG}
    assert "--ipv4" not in config.values


def test_ipv6_arguments() -> None:
    config = _app().parse_args(["--name=x", "--ipv6", "fd00::2/64", "--ipv6-gateway=fe80::1"])
    assert config.net.ipv6 == IPv6Interface("fd00::2/64")
    assert config.net.ipv6_gateway == IPv6Address("fe80::1")
    assert config.net.configured and config.net.ipv4 is None
    assert "--ipv6" not in config.values and "--ipv6-gateway" not in config.values


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--port", "x", "--name=a"],
            "--port: 'x' is not valid: a port is a number from 0 to 65535",
        ),
        (["--port", "70000", "--name=a"], "--port: '70000' is not valid: a port is a number"),
        (["--ratio", "fast", "--name=a"], "--ratio: 'fast' is not a number"),
        (["--mode", "medium", "--name=a"], "--mode: 'medium' is not one of fast, slow"),
        ([], r"missing argument --name: give --name TEXT \(who\)"),
        (["--name"], "--name needs a value: --name TEXT"),
        (["--name", "--port", "1"], "--name needs a value"),
        (["--prot", "1"], r"unknown argument --prot \(did you mean --port\?\)"),
        (["--zzz"], "unknown argument --zzz; --help lists the arguments"),
        (["stray"], "unexpected argument 'stray': boot arguments are written --name VALUE"),
        (["-p", "1"], "unexpected argument '-p'"),
        (["--verbose=yes", "--name=a"], "--verbose takes no value: write --verbose alone"),
        (["--name=a", "--ipv4", "10.0.0.2"], r"--ipv4: '10.0.0.2' is not valid: add the prefix"),
        (["--name=a", "--ipv4", "10.0.0.0/24"], "is the network's network address"),
        (["--name=a", "--ipv4", "10.0.0.255/24"], "is the network's broadcast address"),
        (["--name=a", "--ipv4", "banana/24"], "write an IPv4 address and prefix length"),
        (["--name=a", "--ipv4-gateway", "10.0.0.1"], "--ipv4-gateway needs --ipv4"),
        (
            ["--name=a", "--ipv4", "10.0.0.2/24", "--ipv4-gateway", "10.1.0.1"],
            r"--ipv4-gateway: 10.1.0.1 is not in 10.0.0.0/24",
        ),
        (
            ["--name=a", "--ipv4", "10.0.0.2/24", "--ipv4-gateway", "10.0.0.2"],
            "is the service's own address",
        ),
        (["--name=a", "--dhcp", "--ipv4=10.0.0.2/24"], "--dhcp and --ipv4 both given: keep one"),
        (["--name=a", "--logs", "loud"], "--logs: 'loud' is not valid: unknown log level 'loud'"),
        (
            ["--name=a", "--dns", "dns.example"],
            "--dns: 'dns.example' is not valid: 'dns.example' is not an IP address",
        ),
        (["--name=a", "--dns-search", "a..b"], "--dns-search: 'a..b' is not valid: not a DNS name"),
        (["--name=a", "--hosts", "db"], "--hosts: 'db' is not valid: no '=': write NAME=ADDRESS"),
        (["--name=a", "--hosts", "db=x"], "--hosts: 'db=x' is not valid: 'x' is not an IP address"),
        (["--name=a", "--ipv6", "fd00::2"], r"--ipv6: 'fd00::2' is not valid: add the prefix"),
        (["--name=a", "--ipv6", "10.0.0.2/24"], "write an IPv6 address and prefix length"),
        (["--name=a", "--ipv6", "fe80::2/64"], "is link-local: riad makes its own"),
        (["--name=a", "--ipv6", "ff02::1/64"], "cannot be a host's address"),
        (["--name=a", "--ipv6-gateway", "banana"], "write an IPv6 address"),
        (["--name=a", "--ipv6-gateway", "fd00::1"], "is not on the link.*with --ipv6"),
        (
            ["--name=a", "--ipv6", "fd00::2/64", "--ipv6-gateway", "fd01::1"],
            r"--ipv6-gateway: fd01::1 is not on the link.*inside fd00::/64",
        ),
        (
            ["--name=a", "--ipv6", "fd00::2/64", "--ipv6-gateway", "fd00::2"],
            "is the service's own address",
        ),
    ],
)
def test_mistakes_name_argument_and_fix(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _app().parse_args(argv)
    assert "\n" not in str(info.value)


def test_name_arguments_add_up() -> None:
    config = _app().parse_args(
        [
            "--name=x",
            "--dns",
            "10.0.0.1",
            "--dns=10.0.0.2",
            "--dns-search",
            "Corp.Example.",
            "--hosts",
            "DB.internal=10.0.0.5",
            "--hosts=db.internal=fd00::5",
        ]
    )
    assert config.net.dns == ("10.0.0.1", "10.0.0.2")
    assert config.net.dns_search == ("corp.example",)
    assert config.net.hosts == (("db.internal", "10.0.0.5"), ("db.internal", "fd00::5"))
    assert "--dns" not in config.values
    empty = _app().parse_args(["--name=x"]).net
    assert (empty.dns, empty.dns_search, empty.hosts) == ((), (), ())


def test_dhcp() -> None:
    config = _app().parse_args(["--name=x", "--dhcp"])
    assert config.net.dhcp and config.net.ipv4 is None and config.net.configured


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    with pytest.raises(HelpRequested):
        _app().parse_args(["--port", "1", flag])


def test_usage_lists_everything() -> None:
    app = _app()
    app.kv("htdocs", help="the site")
    text = app.usage("riad run x")
    for word in [
        "--port PORT",
        "default: 7",
        "required",
        "one of fast, slow",
        "--verbose",
        "htdocs",
        "read-only, from htdocs/",
        "--ipv4 ADDRESS/PREFIX",
        "--logs LEVELS",
        "--dns ADDRESS",
        "--hosts NAME=ADDRESS",
        "repeatable",
    ]:
        assert word in text, word
