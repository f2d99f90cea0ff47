"""The management port in process, over real sockets: what it serves, when it opens and closes,
and how it holds up to the wrong token, a secret in an error, malformed HTTP, a head or a body
that never ends, a full budget of connections being answered, and a flood."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import (
    DrainMiddleware,
    Lifecycle,
    Management,
    Phase,
    ProbeApp,
    ShutdownTiming,
    serve,
)
from gracekit._asgi import send_response
from gracekit.drain._prestop import PreStop
from gracekit.metrics import Metrics
from gracekit.server.management import ManagementApp
from tests.support.asgi import call, eventually, lifespan
from tests.support.flood import flood

pytestmark = pytest.mark.anyio

SECRET = "password=hunter2-fake"  # what a failing check's error must never leak
TOKEN = "the-right-token"
BEARER = f"Bearer {TOKEN}"


class Service:
    def __init__(self, management: Management, **probe_options: Any) -> None:
        self.hook_saw: list[int] = []
        self.app_started = anyio.Event()
        self.release = anyio.Event()
        self.lifecycle = lifecycle = Lifecycle(
            shutdown=ShutdownTiming(delay=0.3, drain_timeout=0.5, hook_timeout=2),
            management=management,
        )
        Metrics(lifecycle, registry=CollectorRegistry())

        @lifecycle.check(interval=0.05, timeout=0.05)
        async def db() -> None:
            raise RuntimeError(f"cannot connect to postgresql://app:{SECRET}@db.internal/app")

        @lifecycle.on_shutdown
        async def last_hook() -> None:
            # The management port still answers while the hooks run.
            async with httpx.AsyncClient() as http:
                port = lifecycle.management_port
                self.hook_saw.append((await http.get(f"{url(port)}/health/live")).status_code)

        @asynccontextmanager
        async def own_lifespan(app: Any) -> AsyncIterator[None]:
            self.app_started.set()
            await self.release.wait()  # a slow start of the app's own (migrations, say)
            yield

        async def hello(request: Request) -> PlainTextResponse:
            return PlainTextResponse("hello")

        self.app = Starlette(
            routes=[
                Route("/", hello),
                Mount("/health", app=ProbeApp(lifecycle, **probe_options)),
            ],
            lifespan=lifecycle.lifespan(own_lifespan),
        )
        self.app.add_middleware(DrainMiddleware, lifecycle=lifecycle)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        self.release.set()
        async with lifespan(self.app):
            port = self.lifecycle.management_port
            assert port is not None
            yield url(port)


def url(port: int | None) -> str:
    return f"http://127.0.0.1:{port}"


def here(**options: Any) -> Management:
    return Management(port=0, host="127.0.0.1", **options)


async def raw(port: int, data: bytes) -> bytes:
    """Send *data* on a fresh connection; what comes back: the first response whole, or all
    there was when the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        with anyio.fail_after(5):
            while chunk := await reader.read(65536):
                received += chunk
                head, found, body = received.partition(b"\r\n\r\n")
                lengths = [
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ]
                if found and lengths and len(body) >= lengths[0]:
                    break
        return received
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_it_serves_probes_metrics_and_prestop_with_no_store_and_no_banner() -> None:
    service = Service(here())
    async with service.running() as base, httpx.AsyncClient(base_url=base) as http:
        await eventually(lambda: service.lifecycle.phase is Phase.STARTED)
        answers = {
            path: await http.get(path)
            for path in (
                "/health/startup",
                "/health/live",
                "/health/ready",
                "/health/ready/db",
                "/health/ready?verbose",
                "/metrics",
                "/nowhere",
            )
        }
        assert answers["/health/live"].status_code == 200
        assert answers["/health/ready"].status_code == 503, "the db check fails"
        assert answers["/health/ready/db"].status_code == 503
        assert answers["/nowhere"].status_code == 404
        assert "gracekit_check_up" in answers["/metrics"].text
        for path, response in answers.items():
            assert response.headers["cache-control"] == "no-store", path
            assert "server" not in response.headers, path
        assert (await http.post("/health/live")).status_code == 405


async def test_it_opens_before_the_apps_lifespan_and_closes_after_the_hooks() -> None:
    service = Service(here())
    lifecycle = service.lifecycle
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def run() -> None:
            async with lifespan(service.app):
                await done.wait()

        tg.start_soon(run)
        await service.app_started.wait()  # the app's own lifespan is still starting
        port = lifecycle.management_port
        assert port is not None
        async with httpx.AsyncClient(base_url=url(port)) as http:
            startup = await http.get("/health/startup?verbose")
            assert startup.status_code == 503
            assert "not running" in startup.json()["reasons"]
            assert (await http.get("/health/live")).status_code == 200
            service.release.set()
            await eventually(lambda: lifecycle.phase is Phase.STARTED)
            assert (await http.get("/health/startup")).status_code == 200
            lifecycle.shutdown()
            # Through the delay and the drain: not ready, alive.
            assert (await http.get("/health/ready")).status_code == 503
            assert (await http.get("/health/live")).status_code == 200
            done.set()
    assert service.hook_saw == [200], "it answered while the last hook ran"
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url(port)}/health/live")
    assert lifecycle.management_port is None


async def test_prestop_needs_no_token_on_the_management_port() -> None:
    service = Service(here())
    async with service.running() as base, httpx.AsyncClient(base_url=base) as http:
        response = await http.get("/health/prestop")
    assert (response.status_code, response.text) == (200, "draining\n")
    assert service.lifecycle.shutdown_report.source == "preStop"


WRONG_CALLS: list[tuple[str, list[tuple[bytes, bytes]], int]] = [
    ("GET", [], 401),
    ("POST", [], 401),
    ("HEAD", [], 405),
    ("GET", [(b"authorization", b"Bearer")], 403),  # presented, and empty: wrong
    ("GET", [(b"authorization", b"Bearer ")], 403),
    ("POST", [(b"authorization", b"Bearer the-right-toke")], 403),  # a prefix of the right one
    ("GET", [(b"authorization", b"Bearer the-right-token-and-more")], 403),
    ("GET", [(b"authorization", b"Basic dGhlLXJpZ2h0LXRva2Vu")], 403),  # another scheme
    ("GET", [(b"authorization", b"bearer " + b"x" * 100_000)], 403),  # very long
    ("GET", [(b"authorization", "Bearer thé-right-tökén".encode())], 403),  # non-ASCII bytes
    ("GET", [(b"authorization", b"Bearer \xff\xfe\x00")], 403),
    ("GET", [(b"x-prestop-token", TOKEN.encode())], 401),  # the right one, in the wrong header
    ("HEAD", [(b"authorization", f"Bearer {TOKEN}".encode())], 405),  # right token, wrong method
]


@pytest.mark.parametrize(("method", "headers", "status"), WRONG_CALLS)
async def test_wrong_prestop_calls_change_nothing(
    method: str, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    service = Service(here(), prestop=True, prestop_token=TOKEN)
    async with service.running():
        await eventually(lambda: service.lifecycle.phase is Phase.STARTED)
        answer = await call(service.app, "/health/prestop", method=method, headers=headers)
        assert answer.status == status
        # A call that started the shutdown would have done so before answering.
        assert service.lifecycle.phase is Phase.STARTED
        assert service.lifecycle.shutdown_report.source is None
        right = await call(
            service.app, "/health/prestop", headers=[(b"authorization", f"Bearer {TOKEN}".encode())]
        )
        assert right.status == 200
        assert service.lifecycle.shutdown_report.source == "preStop"


async def test_a_token_in_a_header_of_its_own_on_the_management_port() -> None:
    service = Service(here(prestop_token=TOKEN, prestop_header="X-Prestop-Token"))
    async with service.running() as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/health/prestop")).status_code == 401
        assert (
            await http.get("/health/prestop", headers={"x-prestop-token": TOKEN[:-1]})
        ).status_code == 403
        assert (
            await http.get("/health/prestop", headers={"authorization": f"Bearer {TOKEN}"})
        ).status_code == 401, "the token is expected in its own header"
        assert service.lifecycle.shutdown_report.source is None
        right = await http.get("/health/prestop", headers={"x-prestop-token": TOKEN})
        assert right.status_code == 200


async def test_refused_calls_are_logged_once_per_source_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gracekit")
    service = Service(here(), prestop=True, prestop_token=TOKEN)
    async with service.running():
        for presented in (b"Bearer guess-one", b"Bearer guess-two", b"Bearer guess-one"):
            await call(service.app, "/health/prestop", headers=[(b"authorization", presented)])
        await call(service.app, "/health/prestop")
    refused = [r.getMessage() for r in caplog.records if "preStop call refused" in r.getMessage()]
    assert refused == ["preStop call refused from 127.0.0.1: a wrong token (nothing changed)"]
    assert not any("guess" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("details", "token", "shown"),
    [("never", None, False), ("token", TOKEN, False), ("token", "presented", True)],
)
async def test_error_details_need_the_token_on_the_app(
    details: str, token: str | None, shown: bool
) -> None:
    options: dict[str, Any] = {"details": details}
    if details == "token":
        options["token"] = TOKEN
    service = Service(here(details="never"), **options)
    headers = [(b"authorization", f"Bearer {TOKEN}".encode())] if token == "presented" else []
    async with service.running() as base:
        await eventually(lambda: service.lifecycle.checks["db"].runs > 0)
        bodies = [
            (await call(service.app, path, headers=headers)).body
            for path in ("/health/ready?verbose", "/health/ready/db?verbose", "/health/ready/db")
        ]
        async with httpx.AsyncClient(base_url=base) as http:
            management = [
                (await http.get(path)).content
                for path in ("/health/ready?verbose", "/health/ready/db?verbose", "/metrics")
            ]
    assert any(SECRET.encode() in body for body in bodies) is shown
    assert not any(SECRET.encode() in body for body in management), "details=False"


@pytest.mark.parametrize(
    ("options", "headers", "shown"),
    [
        ({}, [], False),  # the same default as on the app: never
        ({"details": "always"}, [], True),
        ({"details": "token", "details_token": TOKEN}, [], False),
        ({"details": "token", "details_token": TOKEN}, [("authorization", BEARER)], True),
    ],
)
async def test_details_on_the_management_port_follow_the_apps_rule(
    options: dict[str, Any], headers: list[tuple[str, str]], shown: bool
) -> None:
    service = Service(here(**options))
    async with service.running() as base, httpx.AsyncClient(base_url=base) as http:
        await eventually(lambda: service.lifecycle.checks["db"].runs > 0)
        verbose = await http.get("/health/ready/db?verbose", headers=headers)
    assert (SECRET in verbose.text) is shown


MALFORMED = [
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /health/live?" + b"q=" * 50_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G@T /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health/live HTTP/9.9\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n" + b"x" * 5000,
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n",
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /health/%ff%fe/ready HTTP/1.1\r\nHost: x\r\n\r\n",
    b"BREW /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health/live?verbose=%00%ff&exclude=" + b"x" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_http_gets_a_4xx_never_a_5xx(request_bytes: bytes) -> None:
    service = Service(here())
    async with service.running() as base:
        port = service.lifecycle.management_port
        assert port is not None
        response = await raw(port, request_bytes)
        if response:  # a TLS or HTTP/2 client may just be hung up on
            status = status_of(response)
            assert status < 500, response[:200]
            if status >= 400:
                assert b"cache-control: no-store" in response.lower()
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/health/live")).status_code == 200, "still serving"


@asynccontextmanager
async def limited(
    monkeypatch: pytest.MonkeyPatch, *, routes: dict[str, Any] | None = None, **limits: float
) -> AsyncIterator[int]:
    """A running service whose management server has *limits* (HEAD_TIMEOUT=...) and serves
    *routes* too: its port."""
    from gracekit.server import _management_server as management_server

    for name, value in limits.items():
        monkeypatch.setattr(management_server, name, value)
    service = Service(here())
    service.lifecycle.management_routes.update(routes or {})
    async with service.running():
        port = service.lifecycle.management_port
        assert port is not None
        yield port


async def test_a_slow_or_idle_client_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    async with limited(monkeypatch, HEAD_TIMEOUT=0.5, IDLE_TIMEOUT=0.3) as port:
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
        slow.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # never finished
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)  # says nothing
        idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
        idle.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive after
        started = anyio.current_time()
        with anyio.fail_after(5):
            assert await slow_reader.read(-1) == b"", "closed without an answer"
            assert await silent_reader.read(-1) == b"", "closed without an answer"
            answer = await idle_reader.read(-1)
        assert answer.startswith(b"HTTP/1.1 200"), "answered, then closed once idle"
        assert anyio.current_time() - started >= 0.3
        for writer in (slow, silent, idle):
            writer.close()


async def test_a_head_sent_a_byte_at_a_time_has_its_time_from_its_first_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with limited(monkeypatch, HEAD_TIMEOUT=0.6) as port:
        first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        kept_reader, kept = await asyncio.open_connection("127.0.0.1", port)
        kept.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            head = await kept_reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            length = head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
            await kept_reader.readexactly(int(length))
        started = anyio.current_time()

        async def drip(writer: asyncio.StreamWriter) -> None:
            # A byte every 0.1 s, each of them progress: the head is never whole.
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Drip: ")
            with contextlib.suppress(OSError):
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"a")

        # On a new connection, and after a kept-alive answer: the head timer is not reset
        # by each byte, which would let the drip hold the connection for ever.
        async with anyio.create_task_group() as tg:
            tg.start_soon(drip, first)
            tg.start_soon(drip, kept)
            with anyio.fail_after(5):
                assert await first_reader.read(-1) == b"", "closed without an answer"
                assert await kept_reader.read(-1) == b"", "closed without an answer"
            tg.cancel_scope.cancel()
        assert anyio.current_time() - started >= 0.5
        first.close()
        kept.close()


@pytest.mark.parametrize(
    ("framing", "piece"),
    [(b"Transfer-Encoding: chunked", b"1\r\na\r\n"), (b"Content-Length: 4000", b"a")],
    ids=["chunked", "length"],
)
async def test_a_body_that_never_ends_is_answered_and_the_connection_closed(
    framing: bytes, piece: bytes
) -> None:
    # Every piece of the body would put off uvicorn's keep-alive timeout, and the head's
    # timeout is over: only closing after the answer frees the connection.
    service = Service(here())
    async with service.running():
        port = service.lifecycle.management_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /health/live HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")

        async def trickle() -> None:
            with contextlib.suppress(OSError):
                while True:
                    writer.write(piece)
                    await asyncio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(trickle)
            with anyio.fail_after(5):
                received = await reader.read(-1)
            tg.cancel_scope.cancel()
        writer.close()
    assert status_of(received) < 500, received[:200]
    assert received.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in received.lower()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole answer from a kept-alive connection; b"" if the server closed it instead."""
    with anyio.fail_after(5):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return b""
        length = head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
        return head + await reader.readexactly(int(length))


async def test_kept_alive_connections_make_room_even_mid_answer_first_requests_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, holding = anyio.Event(), []

    async def held(scope: Any, receive: Any, send: Any) -> None:
        holding.append(scope)
        await release.wait()
        await send_response(scope, send, 200, [(b"content-length", b"4")], b"held")

    get = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
    async with limited(monkeypatch, routes={"/held": held}, MAX_CONNECTIONS=4) as port:
        # A full budget of kept-alive connections, each being answered (a flood of requests
        # over kept-alive connections, when the loop is busy): a new one still gets in.
        kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        for reader, writer in kept:
            writer.write(get % b"/health/live")
            assert (await read_answer(reader)).startswith(b"HTTP/1.1 200 ")
            writer.write(get % b"/held")
        await eventually(lambda: len(holding) == 4)
        assert (await raw(port, get % b"/health/live")).startswith(b"HTTP/1.1 200 ")
        release.set()
        answers = [await read_answer(reader) for reader, _ in kept]
        assert sum(answer == b"" for answer in answers) == 1, "one closed for room"
        for _, writer in kept:
            writer.close()
        # A full budget of first requests being answered: none is closed for room.
        release, holding = anyio.Event(), []
        first = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        for _, writer in first:
            writer.write(get % b"/held")
        await eventually(lambda: len(holding) == 4)
        assert await raw(port, get % b"/health/live") == b"", "no room: closed at once"
        release.set()
        for reader, writer in first:
            assert (await read_answer(reader)).endswith(b"held")
            writer.close()


async def test_a_flood_leaves_readiness_answering() -> None:
    service = Service(here())
    async with service.running() as base:
        port = service.lifecycle.management_port
        assert port is not None
        statuses: dict[int, int] = {}
        latencies: list[float] = []

        async def probe_meanwhile() -> None:
            async with httpx.AsyncClient(base_url=base) as http:
                while sum(statuses.values()) < 10_000:
                    started = anyio.current_time()
                    await http.get("/health/live")
                    latencies.append(anyio.current_time() - started)
                    await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe_meanwhile)
            await flood(port, 50, 200, statuses=statuses)
    assert sum(statuses.values()) == 10_000
    assert set(statuses) == {503}, "every flood request answered (the db check fails)"
    assert latencies, "the kubelet's own probe got through during the flood"
    assert max(latencies) < 2.0


def test_bad_management_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="0 to 65535"):
        Management(port=70000)
    with pytest.raises(TypeError, match="must be an int"):
        Management(port="9000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GRACEKIT_MANAGEMENT_PORT must be a port number"):
        Management.from_env({"GRACEKIT_MANAGEMENT_PORT": "http"})
    assert Management.from_env({"GRACEKIT_MANAGEMENT_PORT": "9001"}) == Management(port=9001)
    assert Management.from_env({}) is None
    base = Management(port=9000, details="never")
    assert Management.from_env({"GRACEKIT_MANAGEMENT_PORT": "9002"}, base=base) == Management(
        port=9002, details="never"
    )
    with pytest.raises(TypeError, match="must be a Management"):
        Lifecycle(management=9000)  # type: ignore[arg-type]
    assert "hunter" not in repr(Management(port=1, prestop_token="hunter2"))
    with pytest.raises(ValueError, match="needs a token"):
        Management(port=1, prestop_header="X-Token")
    with pytest.raises(ValueError, match="non-empty"):
        Management(port=1, prestop_token=" ")


def test_several_uvicorn_workers_are_refused_a_port_they_cannot_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gracekit.server.serve import check_workers

    check_workers(2, {})  # no management port
    check_workers(2, {"GRACEKIT_MANAGEMENT_PORT": "0"})  # each worker a free port of its own
    check_workers(1, {"GRACEKIT_MANAGEMENT_PORT": "9001"})
    with pytest.raises(ValueError, match="GRACEKIT_MANAGEMENT_PORT must be a port number"):
        check_workers(2, {"GRACEKIT_MANAGEMENT_PORT": "http"})
    monkeypatch.setenv("GRACEKIT_MANAGEMENT_PORT", "9001")
    with pytest.raises(ValueError, match=r"gunicorn -k gracekit\.server\.gunicorn\.Worker -w 3"):
        serve("main:app", workers=3)  # refused before uvicorn starts anything


async def test_prestop_off_loopback_needs_a_token_or_the_explicit_opt_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gracekit")
    lifecycle = Lifecycle()
    reachable = ManagementApp(lifecycle, Management(port=9001), host="0.0.0.0")
    assert reachable.prestop_closed is not None
    for headers in ([], [(b"authorization", b"Bearer anything")]):
        answer = await call(reachable, "/health/prestop", headers=headers)
        assert answer.status == 403
        assert answer.headers[b"cache-control"] == b"no-store"
    assert lifecycle.shutdown_report.source is None, "nothing changed"
    assert "GRACEKIT_PRESTOP_TOKEN" in caplog.text
    assert ManagementApp(lifecycle, Management(port=1), host="::1").prestop_closed is None
    opted = Management(port=1, unauthenticated_prestop=True)
    assert ManagementApp(lifecycle, opted, host="0.0.0.0").prestop_closed is None
    tokened = Management(port=1, prestop_token=TOKEN)
    assert ManagementApp(lifecycle, tokened, host="10.1.2.3").prestop_closed is None
    with pytest.raises(ValueError, match="contradict"):
        Management(port=1, prestop_token=TOKEN, unauthenticated_prestop=True)


def test_a_token_with_whitespace_around_it_is_refused_at_startup() -> None:
    for token in (f"{TOKEN}\n", f" {TOKEN}", f"{TOKEN}\r\n"):
        with pytest.raises(ValueError, match="whitespace around it"):
            Management(port=1, prestop_token=token)
        environ = {"GRACEKIT_MANAGEMENT_PORT": "9001", "GRACEKIT_PRESTOP_TOKEN": token}
        with pytest.raises(ValueError, match=r"GRACEKIT_PRESTOP_TOKEN: .*whitespace around it"):
            Management.from_env(environ)
        with pytest.raises(ValueError, match="whitespace around it"):
            ProbeApp(Lifecycle(), prestop=True, prestop_token=token)
    with pytest.raises(ValueError, match="control characters"):
        Management(port=1, prestop_token="a\x00b")
    env = {"GRACEKIT_MANAGEMENT_PORT": "9001", "GRACEKIT_MANAGEMENT_HOST": "::1"}
    assert Management.from_env({**env, "GRACEKIT_PRESTOP_TOKEN": TOKEN}) == Management(
        port=9001, host="::1", prestop_token=TOKEN
    )


async def test_prestop_calls_are_logged_with_the_socket_peer_and_throttled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gracekit")
    service = Service(here(prestop_token=TOKEN))
    async with service.running() as base, httpx.AsyncClient(base_url=base) as http:
        for n in range(600):  # a caller posing as 600 others
            await http.get("/health/prestop", headers={"x-forwarded-for": f"10.9.{n}.1"})
        assert service.lifecycle.shutdown_report.source is None
        accepted = await http.get("/health/prestop", headers={"authorization": BEARER})
        assert accepted.status_code == 200
    lines = [r.getMessage() for r in caplog.records if "preStop call" in r.getMessage()]
    assert lines == [
        "preStop call refused from 127.0.0.1: no token (nothing changed)",
        "preStop call accepted from 127.0.0.1: shutting down",
    ]


async def test_a_forwarded_client_cannot_flood_the_log_of_the_apps_prestop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # On the app's port uvicorn's proxy headers may set the client from X-Forwarded-For: the
    # lines are capped in all, and the caller's text is kept to address characters.
    caplog.set_level(logging.WARNING, logger="gracekit")
    prestop = PreStop(Lifecycle(), token=TOKEN)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    for n in range(600):
        scope = {
            "type": "http",
            "method": "GET",
            "headers": [(b"authorization", b"Bearer wrong")],
            "client": (f"10.9.{n}.1\nforged line", 1),
        }
        await prestop(scope, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [403] * 600
    lines = [r.getMessage() for r in caplog.records if "preStop call" in r.getMessage()]
    assert len(lines) == 10
    assert not any("\n" in line for line in lines)
