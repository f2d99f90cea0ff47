"""What gracekit relies on in uvicorn (the list in gracekit/server/_uvicorn.py), each point
observed on a real ``uvicorn.Server`` serving a real socket: if a release changes one of them,
this file fails before users find out."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit.server._uvicorn import UvicornControl, find_server
from tests.support.asgi import eventually
from tests.support.server import free_port, stop, wait_until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
#: The main loop looks at should_exit every 0.1 s; the rest is slack for a busy machine.
TICK = 0.1
SLACK = 0.5


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_installed_uvicorn_is_in_the_pinned_range() -> None:
    pin = re.search(
        r'uvicorn = \["uvicorn>=([\d.]+),<([\d.]+)"\]', (ROOT / "pyproject.toml").read_text()
    )
    assert pin is not None, "the uvicorn extra must pin a range: >=LOW,<HIGH"
    assert version(pin.group(1)) <= version(uvicorn.__version__) < version(pin.group(2))


@dataclass
class Running:
    """A uvicorn.Server serving an app in this event loop, with a route that holds requests."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    release: asyncio.Event
    held: list[Request] = field(default_factory=list)
    handlers_at_startup: dict[signal.Signals, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True


@asynccontextmanager
async def running() -> AsyncIterator[Running]:
    release = asyncio.Event()
    handlers: dict[signal.Signals, Any] = {}
    held: list[Request] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        handlers.update({s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)})
        yield

    async def hold(request: Request) -> PlainTextResponse:
        held.append(request)
        await release.wait()
        return PlainTextResponse("released")

    app = Starlette(routes=[Route("/hold", hold)], lifespan=lifespan)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), timeout=10)
    assert server.started, task
    try:
        yield Running(server, task, port, release, held, handlers)
    finally:
        server.should_exit = server.force_exit = True
        release.set()
        await asyncio.wait_for(task, 10)


async def test_the_servers_handle_exit_is_the_signal_handler_when_the_lifespan_starts() -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with running() as it:
        for signum in (signal.SIGTERM, signal.SIGINT):
            handler = it.handlers_at_startup[signum]
            assert handler.__self__ is it.server
            assert handler.__name__ == "handle_exit"
        assert find_server(it.handlers_at_startup[signal.SIGTERM]) is it.server
    assert signal.getsignal(signal.SIGTERM) == before, "uvicorn puts the handlers back"


def test_find_server_ignores_other_handlers() -> None:
    assert find_server(signal.SIG_DFL) is None
    assert find_server(print) is None

    class NotUvicorn:
        def handle_exit(self, signum: int, frame: object) -> None: ...

    assert find_server(NotUvicorn().handle_exit) is None


async def test_should_exit_stops_accepting_within_a_tick_and_waits_for_open_requests() -> None:
    async with running() as it, httpx.AsyncClient(base_url=it.url, timeout=10) as http:
        request = asyncio.create_task(http.get("/hold"))
        await eventually(lambda: len(it.held) == 1)
        started = time.monotonic()
        UvicornControl(it.server).stop_accepting()
        while await it.accepts():
            assert time.monotonic() - started < TICK + SLACK, "still accepting"
            await asyncio.sleep(0.01)
        assert not it.task.done(), "it waits for the request in flight"
        it.release.set()
        assert (await request).text == "released"
        await asyncio.wait_for(it.task, 5)


async def test_force_exit_ends_the_wait_for_open_requests() -> None:
    async with running() as it, httpx.AsyncClient(base_url=it.url, timeout=10) as http:
        request = asyncio.create_task(http.get("/hold"))
        await eventually(lambda: len(it.held) == 1)
        control = UvicornControl(it.server)
        control.stop_accepting()
        await eventually(lambda: not it.server.servers or not it.server.servers[0].is_serving())
        assert it.server.config.timeout_graceful_shutdown is None  # it would wait forever
        started = time.monotonic()
        control.force_exit()
        await asyncio.wait_for(it.task, TICK + SLACK + 1)
        assert time.monotonic() - started < TICK + SLACK + 1
        assert not request.done(), "serve() returned with the request still held"
        request.cancel()  # in a real process, the exit ends it


async def test_the_graceful_timeout_is_read_when_the_shutdown_starts() -> None:
    async with running() as it, httpx.AsyncClient(base_url=it.url, timeout=10) as http:
        request = asyncio.create_task(http.get("/hold"))
        await eventually(lambda: len(it.held) == 1)
        control = UvicornControl(it.server)
        control.bound_graceful_wait(0.3)  # after startup, as gracekit does
        assert it.server.config.timeout_graceful_shutdown == 0.3
        control.bound_graceful_wait(99)
        assert it.server.config.timeout_graceful_shutdown == 0.3, "a setting in place wins"
        started = time.monotonic()
        control.stop_accepting()
        await asyncio.wait_for(it.task, 5)
        took = time.monotonic() - started
        assert 0.3 <= took < 0.3 + TICK + SLACK + 0.5, took
        answer = await request
        assert answer.status_code == 500, "uvicorn cancelled the request at its timeout"


APP = """
import signal
import sys

from gracekit.server._uvicorn import UvicornControl, find_server


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        server = find_server(signal.getsignal(signal.SIGTERM))
        print("reload:", UvicornControl(server).reload if server else "no server", flush=True)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
"""


def test_config_reload_is_true_in_the_process_reload_runs(tmp_path: Path) -> None:
    (tmp_path / "reloaded.py").write_text(APP)
    log = tmp_path / "log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "reloaded:app", "--reload", "--lifespan", "on",
             "--app-dir", str(tmp_path), "--reload-dir", str(tmp_path), "--port",
             str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        assert wait_until(lambda: "reload:" in log.read_text(), timeout=20), log.read_text()
    finally:
        stop(process)
    assert "reload: True" in log.read_text(), log.read_text()
