"""The HTTP and TCP checks against a real uvicorn server and a fault proxy."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gracekit.checks import http_check, tcp_check
from gracekit.probes import CheckState, CheckStatus
from tests.support.faultproxy import FaultProxy
from tests.support.faults import run
from tests.support.server import Server, free_port, run_uvicorn

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_uvicorn("minimal:app", ready_path="/health/ready") as running:
        yield running


async def test_http_check_passes_on_expected_status(server: Server) -> None:
    state = CheckState(http_check(server.url + "/health/ready"))
    assert state.check.name == "127.0.0.1"
    assert await run(state) is CheckStatus.PASS
    assert state.detail == {"status": 200}


async def test_http_check_fails_on_other_status(server: Server) -> None:
    state = CheckState(http_check(server.url + "/nope", name="api"))
    assert await run(state) is CheckStatus.FAIL
    assert state.error == f"CheckFailed: GET {server.url}/nope answered 404"
    accepting = CheckState(http_check(server.url + "/nope", name="api", expected_status={404}))
    assert await run(accepting) is CheckStatus.PASS


async def test_http_check_with_a_shared_client_and_headers(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        state = CheckState(
            http_check(server.url + "/", client=client, headers={"x-probe": "1"}, method="HEAD")
        )
        assert await run(state) is CheckStatus.PASS


async def test_http_check_times_out_on_a_hanging_server(server: Server) -> None:
    with FaultProxy("127.0.0.1", server.port) as proxy:
        proxy.hang()
        state = CheckState(http_check(f"http://127.0.0.1:{proxy.port}/", timeout=0.2))
        assert await run(state) is CheckStatus.FAIL
        assert state.error == "TimeoutError: no answer within 0.2 s"
        proxy.refuse()
        assert await run(state) is CheckStatus.FAIL
        assert state.error is not None
        assert state.error.startswith("ConnectError")


async def test_tcp_check(server: Server) -> None:
    up = CheckState(tcp_check("127.0.0.1", server.port))
    assert up.check.name == f"tcp-127.0.0.1-{server.port}"
    assert await run(up) is CheckStatus.PASS
    down = CheckState(tcp_check("127.0.0.1", free_port(), name="nothing"))
    assert await run(down) is CheckStatus.FAIL
    assert down.error is not None
    assert "OSError" in down.error or "ConnectionRefusedError" in down.error


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: http_check("ftp://x/"), ValueError, "needs an http:// or https:// URL"),
        (lambda: http_check("nothing"), ValueError, "needs an http:// or https:// URL"),
        (lambda: http_check("http://x/", expected_status=[]), ValueError, "non-empty"),
        (lambda: http_check("http://x/", expected_status=[700]), ValueError, "status codes"),
        (lambda: http_check("http://x/", client=object()), TypeError, "httpx.AsyncClient"),
        (lambda: tcp_check("", 80), ValueError, "needs a host name"),
        (lambda: tcp_check("db", 0), ValueError, r"must be in 1\.\.65535"),
        (lambda: tcp_check("db", "5432"), TypeError, "must be an int"),
    ],
)
def test_configuration_errors(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]
