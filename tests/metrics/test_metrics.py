"""``--metrics-port`` on riad's stack, on the simulated network: what a scrape says.

A service serving HTTP (riad's ``HttpServer``) runs with ``riad.app.serve`` on
riad's stack in a ``SimLab``; a second stack sends it requests and scrapes
``/metrics``, read by ``prometheus_client``'s own parser of the text format.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

import riad
from riad.app import App, ExitCode, serve, static_stack
from riad.app.metrics import Metrics
from riad.backends.console import MemoryConsole
from riad.backends.entropy import SeededRandom
from riad.devices import Stack
from riad.services.http import HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import SimClock

SERVER = "10.0.0.1"
WEB = 8080
METRICS = 9100

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def status_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /NNN`` answers status NNN."""
    if scope["type"] != "http":
        return
    status = int(scope["path"][1:] or "200")
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


def web_app() -> App:
    app = App("web", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        async with HttpServer(status_app, lifespan=False) as server:
            await server.listen(dev.stack, None, WEB)
            await dev.wait_for_shutdown()

    return app


async def get(stack: Stack, port: int, paths: list[str]) -> bytes:
    """``GET`` each of ``paths`` on one keep-alive connection (the last one closes it)."""
    reader, writer = await stack.open_connection(SERVER, port)
    for i, path in enumerate(paths):
        close = b"connection: close\r\n" if i == len(paths) - 1 else b""
        writer.write(b"GET %s HTTP/1.1\r\nhost: t\r\n%s\r\n" % (path.encode(), close))
    await writer.drain()
    answer = await reader.read(-1)
    writer.close()
    return answer


async def scrape(stack: Stack, port: int = METRICS) -> tuple[str, Samples]:
    answer = await get(stack, port, ["/metrics"])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"content-type: text/plain; version=0.0.4" in head.lower()
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return body.decode(), samples


def run(argv: list[str], driver) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    console = MemoryConsole()

    async def main(lab: SimLab) -> int:
        server = lab.add_stack(f"{SERVER}/24")
        client = lab.add_stack("10.0.0.2/24")
        stop = asyncio.Event()
        app = web_app()
        service = asyncio.create_task(
            serve(
                app,
                app.parse_args(argv),
                open_stack=static_stack(server),
                console=console,
                clock=SimClock(),
                random=SeededRandom(1),
                stop=stop,
            )
        )
        await asyncio.sleep(0.01)
        try:
            await driver(client)
        finally:
            stop.set()
        return await service

    return run_lab(main, seed=test_seed(7)), console.lines


def test_requests_by_status_latency_and_the_stack_s_counters_move_with_traffic() -> None:
    scrapes: list[tuple[str, Samples]] = []

    async def driver(client: Stack) -> None:
        scrapes.append(await scrape(client))
        await get(client, WEB, ["/200"] * 5 + ["/404"] * 3 + ["/503"])
        await get(client, WEB, ["/200"] * 2)
        scrapes.append(await scrape(client))

    code, lines = run(["--metrics-port", str(METRICS)], driver)
    assert code == ExitCode.OK, lines
    assert any("riad: metrics endpoint port=9100 path=/metrics" in line for line in lines)
    (_, before), (text, after) = scrapes

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("riad_http_requests_total", status="200") == 7
    assert moved("riad_http_requests_total", status="404") == 3
    assert moved("riad_http_requests_total", status="503") == 1
    assert moved("riad_http_request_duration_seconds_count") == 11
    assert moved("riad_http_request_duration_seconds_bucket", le="+Inf") == 11
    assert after[("riad_http_request_duration_seconds_sum", ())] >= 0
    # two web connections and the first scrape's came and went
    assert moved("riad_tcp_connections_closed_total") >= 3
    assert moved("riad_tcp_conn_segments_in_total") >= 6
    assert moved("riad_tcp_conn_bytes_in_total") > 11 * len("GET /200 HTTP/1.1\r\n")
    assert moved("riad_tcp_segments_received_total") >= 6
    assert moved("riad_interface_rx_frames_total") >= 6
    assert moved("riad_interface_tx_frames_total") >= 6
    assert after[("riad_stack_info", (("stack", "riad"),))] == 1
    assert after[("python_allocated_blocks", ())] > 0
    assert "# TYPE riad_http_request_duration_seconds histogram" in text


def test_malformed_packets_are_counted_as_drops_by_layer_and_reason() -> None:
    async def driver(client: Stack) -> None:
        # a datagram to a port no one listens on: udp.no_socket
        transport, _ = await client.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(SERVER, 9)
        )
        transport.sendto(b"x")
        await asyncio.sleep(0.1)
        transport.close()
        _, samples = await scrape(client)
        seen.update(samples)

    seen: Samples = {}
    code, lines = run(["--metrics-port", str(METRICS)], driver)
    assert code == ExitCode.OK, lines
    assert seen[("riad_stack_drops_total", (("layer", "udp"), ("reason", "no_socket")))] == 1


def test_off_by_default_nothing_listens_and_nothing_is_counted() -> None:
    servers: list[HttpServer] = []

    async def driver(client: Stack) -> None:
        await get(client, WEB, ["/200"])
        try:
            await client.open_connection(SERVER, METRICS)
        except ConnectionRefusedError:
            refused.append(True)

    refused: list[bool] = []
    original = HttpServer.listen

    async def listen(self: HttpServer, *args: object, **kwargs: object) -> object:
        servers.append(self)
        return await original(self, *args, **kwargs)  # type: ignore[arg-type]

    HttpServer.listen = listen  # type: ignore[assignment,method-assign]
    try:
        code, _ = run([], driver)
    finally:
        HttpServer.listen = original  # type: ignore[method-assign]
    assert code == ExitCode.OK
    assert refused == [True]
    assert [server.metrics for server in servers] == [None]


def test_the_same_port_as_the_health_endpoint_answers_both() -> None:
    answers: list[bytes] = []

    async def driver(client: Stack) -> None:
        answers.append(await get(client, METRICS, ["/healthz"]))
        text, _ = await scrape(client)
        answers.append(text.encode())

    argv = ["--metrics-port", str(METRICS), "--health-port", str(METRICS)]
    code, lines = run(argv, driver)
    assert code == ExitCode.OK, lines
    assert answers[0].startswith(b"HTTP/1.1 200") and answers[0].endswith(b"ok\n")
    assert b"riad_http_requests_total" in answers[1]


def test_a_bad_port_is_refused_naming_the_argument() -> None:
    app = web_app()
    try:
        app.parse_args(["--metrics-port", "99999"])
    except riad.ConfigError as exc:
        assert (
            str(exc) == "--metrics-port: '99999' is not valid: a port is a number from 0 to 65535"
        )
    else:
        raise AssertionError("accepted")


def test_the_counts_become_labels_and_cumulative_buckets_only_when_scraped() -> None:
    metrics = Metrics(None)
    http = metrics.http
    for status, seconds in [(200, 0.001), (200, 0.0011), (None, 0.0), (599, 30.0), (999, 0.01)]:
        http.observe(status, seconds)
    assert http.requests == {0: 1, 200: 2, 599: 1, 999: 1}
    assert http.total == 5
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    requests = {k[1]: v for k, v in samples.items() if k[0] == "riad_http_requests_total"}
    assert requests == {
        (("status", "0"),): 1,
        (("status", "200"),): 2,
        (("status", "599"),): 1,
        (("status", "999"),): 1,
    }

    def bucket(le: str) -> float:
        return samples[("riad_http_request_duration_seconds_bucket", (("le", le),))]

    # bounds are inclusive: 1 ms is in the first bucket, 1.1 ms in the next
    assert (bucket("0.001"), bucket("0.0025"), bucket("0.01"), bucket("10.0")) == (2, 3, 4, 4)
    assert bucket("+Inf") == samples[("riad_http_request_duration_seconds_count", ())] == 5
    assert samples[("riad_http_request_duration_seconds_sum", ())] == pytest.approx(30.0121)


def test_a_request_s_duration_is_not_read_in_whole_milliseconds_under_uvloop() -> None:
    """uvloop's ``loop.time()`` is libuv's loop time, counted in whole milliseconds: a
    request's duration is read from ``time.perf_counter`` there, from the loop's own
    clock on riad's loop."""
    import time

    import uvloop

    from riad.metrics import request_clock

    loop = uvloop.new_event_loop()
    try:
        readings = [loop.time() * 1000 for _ in range(50)]
        assert all(abs(reading - round(reading)) < 1e-6 for reading in readings)
        assert request_clock(loop) is time.perf_counter
    finally:
        loop.close()
    riad_loop = asyncio.new_event_loop()
    try:
        assert request_clock(riad_loop) == riad_loop.time
    finally:
        riad_loop.close()
