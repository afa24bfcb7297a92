"""FastAPI and a threaded WSGI application sealed in the sandbox and in a vm, in ``enforce``
mode, answering curl: validation errors, threads, and looking for what is not there."""

from __future__ import annotations

import concurrent.futures

import pytest

from .conftest import sealed

pytestmark = pytest.mark.netns

SHOP_WARMUP = [
    "--warmup", "GET /items/1",
    "--warmup", 'POST /items json={"name": "tea", "price": 2.5}',
    "--warmup", 'POST /items json={"name": "", "price": -1}',
    "--warmup", "GET /threaded",
]  # fmt: skip


@pytest.mark.parametrize("target", ["sandbox", "vm"])
def test_fastapi_sealed_answers_and_looks_without_dying(target: str) -> None:
    with sealed(target, "shop:app", *SHOP_WARMUP) as svc:
        post = ("-H", "content-type: application/json", "--data-binary")
        status, made = svc.json("/items", *post, '{"name": "cup", "price": 4}')
        assert status == 201 and made == {"id": 1, "name": "cup", "price": 4.0}
        assert svc.json("/items/1") == (200, made)
        status, path_error = svc.json("/items/abc")
        assert status == 422 and path_error["detail"][0]["loc"] == ["path", "item_id"]
        status, body_error = svc.json("/items", *post, '{"name": "", "price": 0}')
        assert status == 422
        assert sorted(e["loc"][-1] for e in body_error["detail"]) == ["name", "price"]
        status, broken = svc.json("/items", *post, "{not json")
        assert status == 422 and broken["detail"][0]["type"] == "json_invalid"
        status, threads = svc.json("/threaded")  # a worker thread, started sealed
        assert status == 200 and threads["threads"] >= 2
        # looking for a host file finds nothing, twice, and the service goes on
        for _ in range(2):
            assert svc.json("/peek") == (200, {"open": "ENOENT", "stat": "ENOENT"})
            assert svc.json("/late") == (200, {"late": "ModuleNotFoundError"})
        assert svc.json("/items/1") == (200, made)
        assert svc.proc.stop() == 0
    output = svc.proc.output
    looked = [line for line in svc.proc.lines if "looked for /etc/hostname" in line]
    assert len(looked) == 1, looked  # one line per path
    assert "--include PATH" in looked[0]
    module = [line for line in svc.proc.lines if "riad: module wave is not in the" in line]
    assert len(module) == 1 and "--include wave" in module[0], module
    assert "stopped" not in output and "Traceback" not in output


@pytest.mark.parametrize("target", ["sandbox", "vm"])
def test_wsgi_pool_runs_its_threads_sealed(target: str) -> None:
    with sealed(target, "pool:app", "--warmup", "GET /hello") as svc:
        assert svc.json("/hello")[0] == 200
        # three requests that wait for each other: answered only by three threads at once
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: svc.json("/meet"), range(3)))
        assert [status for status, _ in answers] == [200, 200, 200]
        assert len({body["thread"] for _, body in answers}) == 3  # type: ignore[index]
        assert svc.proc.stop() == 0
    assert "stopped" not in svc.proc.output and "Traceback" not in svc.proc.output
