"""The one reader of boot arguments (``riad.bootargs.scan``) and their one encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riad.app import App, port
from riad.bootargs import (
    NET_ARGS,
    ConfigError,
    decode,
    encode,
    from_environment,
    kernel_parameter,
    scan,
    split,
)

TAKES = {"--port": "PORT", "--verbose": None}


def test_scan_yields_known_arguments_and_every_other_token_in_order() -> None:
    argv = ["--port", "7", "x", "--verbose", "--other=1", "--port=8", "--", "--y", "z"]
    assert list(scan(argv, TAKES)) == [
        ("--port", "7"),
        (None, "x"),
        ("--verbose", None),
        (None, "--other=1"),
        ("--port", "8"),
        (None, "--"),
        (None, "--y"),
        (None, "z"),
    ]


def test_a_value_never_looks_like_an_option_but_numbers_are_values() -> None:
    assert list(scan(["--port", "-5"], TAKES)) == [("--port", "-5")]
    assert list(scan(["--port", "--5"], TAKES)) == [("--port", "--5")]
    with pytest.raises(ConfigError, match=r"^--port needs a value: --port PORT$"):
        list(scan(["--port", "--verbose"], TAKES))
    with pytest.raises(ConfigError, match="needs a value"):
        list(scan(["--port"], TAKES))
    with pytest.raises(ConfigError, match=r"^--verbose takes no value: write --verbose alone$"):
        list(scan(["--verbose=1"], TAKES))


def test_split_takes_the_known_ones_out_and_the_last_wins() -> None:
    found, rest = split(
        ["--ipv4", "10.0.0.2/24", "--port", "7", "--ipv4-gateway=10.0.0.1", "--ipv4=10.9.0.2/8"],
        NET_ARGS,
    )
    assert found == {"--ipv4": "10.9.0.2/8", "--ipv4-gateway": "10.0.0.1"}
    assert rest == ["--port", "7"]


def test_the_typed_parser_reads_the_same_syntax() -> None:
    """What ``split`` finds in a line is what ``parse_boot_args`` makes of it."""
    app = App("svc")
    app.arg("--port", port, default=7)
    argv = ["--ipv4", "10.0.0.2/24", "--port=9", "--ipv4-gateway", "10.0.0.1"]
    config = app.parse_args(argv)
    found, _ = split(argv, NET_ARGS)
    assert str(config.net.ipv4) == found["--ipv4"]
    assert str(config.net.gateway) == found["--ipv4-gateway"]
    assert config.values["--port"] == 9


def test_plain_arguments_stay_readable() -> None:
    assert encode(["--port", "7", "--ipv4=10.0.0.2/24"]) == "--port 7 --ipv4=10.0.0.2/24"
    assert kernel_parameter(["--port", "7"]) == 'RIAD_ARGS="--port 7"'


def test_spaces_quotes_and_percent_are_escaped() -> None:
    encoded = encode(['--name=a "b"', "100%"])
    assert encoded == "--name=a%20%22b%22 100%25"
    assert decode(encoded) == ['--name=a "b"', "100%"]


@given(st.lists(st.text(min_size=1, max_size=12), max_size=6))
def test_round_trip(args: list[str]) -> None:
    assert decode(encode(args)) == args
    assert from_environment({"RIAD_ARGS": encode(args)}) == args


def test_no_parameter_is_no_arguments() -> None:
    assert from_environment({}) == []


@pytest.mark.parametrize("text", ["--x=%", "--x=%4", "--x=%zz"])
def test_a_bad_escape_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match="bad %XX escape"):
        decode(text)
