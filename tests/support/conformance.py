"""The conformance matrix's scenario: one service under one server, in real processes, taken
through a SIGTERM shutdown and a preStop shutdown, with everything it answered recorded.

Two processes per cell, started and driven at once: one for the SIGTERM sequence, one for the
preStop hook (each shutdown ends its process). The scenario never asserts: it records what it
saw, or why it could not see it, and the tests in ``tests/test_matrix.py`` judge the record, so
that one wrong answer does not hide the others.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.support.metrics import Samples, samples, value
from tests.support.server import TEST_APPS, free_port, run_uvicorn, wait_until

APPS = {"starlette": "matrix_starlette:app", "fastapi": "matrix_fastapi:app"}
LAUNCHERS = ("gracekit", "uvicorn", "gunicorn")
#: An app wired by ``gracekit.install()`` instead of by hand: APPS' name with this suffix.
INSTALLED = "-install"

TOKEN = "s3cret"
DEADLINE = 1.0  # the default request deadline
DELAY = 4.0  # after SIGTERM: room, on a busy machine, to look at everything during it
PRESTOP_DELAY = 2.5  # longer than DEADLINE: the hook must outlast the default deadline
DRAIN = 5.0
SHORT_MS = 1500  # in flight across SIGTERM, done during the delay
LONG_MS = int(DELAY * 1000) + 2500  # in flight across SIGTERM and into the drain
STREAM_CHUNKS = 15  # 0.1 s apart
KEEP_ALIVE_IDLE = 3.0  # more than gunicorn's 2 s keep-alive, less than the 5 s promised
LOAD_SECONDS, LOAD_MAX = 1.0, 100  # the bounded load during the delay
SLACK = 3.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)

    def scrape(self) -> Samples:
        return samples(self.body.decode())


def get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10) -> Reply:
    """One request on a connection of its own."""
    started = time.monotonic()
    response = httpx.get(url, headers=headers, timeout=timeout)
    seconds = time.monotonic() - started
    return Reply(response.status_code, dict(response.headers), response.content, seconds)


@dataclass
class Record:
    """What a cell answered, by name; or why it could not be seen."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except Exception as exc:  # recorded for the tests that need it; the scenario goes on
            with self.lock:
                self.errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        with self.lock:
            self.values[name] = result
        return result

    def wait(self, name: str, future: Future[Any], timeout: float) -> Any:
        return self.take(name, future.result, timeout=timeout)

    def __getitem__(self, name: str) -> Any:
        if name in self.errors:
            raise AssertionError(f"{name} failed: {self.errors[name]}\n{self.values.get('log')}")
        if name not in self.values:
            raise AssertionError(f"{name} was not observed\n{self.values.get('log', '')}")
        return self.values[name]


def _serving(app: str, launcher: str, management: int, delay: float) -> Any:
    """The cell's service under its server, ready, with its management port and delay."""
    env = {
        "GRACEKIT_MANAGEMENT_PORT": str(management),
        "GRACEKIT_SHUTDOWN_DELAY": str(delay),
        "GRACEKIT_DRAIN_TIMEOUT": str(DRAIN),
        "DEADLINE": str(DEADLINE),
        "PRESTOP_TOKEN": TOKEN,
        "WIRING": "install" if app.endswith(INSTALLED) else "hand",
    }
    return run_uvicorn(
        APPS[app.removesuffix(INSTALLED)],
        app_dir=TEST_APPS,
        env=env,
        launcher=launcher,
        ready_path="/health/ready",
    )


def run_cell(app: str, launcher: str) -> Record:
    """Run the scenario for *app* ("starlette", "fastapi", either with INSTALLED) under
    *launcher*."""
    record = Record()
    prestop = threading.Thread(target=_prestop_run, args=(app, launcher, record))
    prestop.start()
    try:
        _sigterm_run(app, launcher, record)
    finally:
        prestop.join(timeout=60)
    return record


def _sigterm_run(app: str, launcher: str, rec: Record) -> None:
    port = free_port()
    mgmt = f"http://127.0.0.1:{port}"
    with _serving(app, launcher, port, DELAY) as server, ThreadPoolExecutor(5) as pool:
        base = server.url
        for probe in ("startup", "live", "ready"):
            rec.take(f"probe {probe}", get, f"{base}/health/{probe}")
            rec.take(f"verbose {probe}", get, f"{base}/health/{probe}?verbose")
            rec.take(f"management {probe}", get, f"{mgmt}/health/{probe}")
        rec.take("index", get, base + "/")
        rec.take("item", get, base + "/items/3")
        rec.take("route deadline", get, base + "/hang")
        rec.take("budget deadline", get, base + "/hang", headers={"x-gracekit-budget-ms": "200"})
        rec.take("metrics", get, base + "/metrics")
        rec.take("metrics again", get, base + "/metrics")
        rec.take("management metrics", get, mgmt + "/metrics")

        # In flight when SIGTERM arrives: a websocket, a stream, a short and a long request.
        ws = rec.take("websocket open", ws_connect, f"ws://127.0.0.1:{server.port}/ws")
        short = pool.submit(get, f"{base}/slow?ms={SHORT_MS}", timeout=30)
        long = pool.submit(get, f"{base}/slow?ms={LONG_MS}", timeout=30)
        streamed = pool.submit(_read_stream, f"{base}/stream?n={STREAM_CHUNKS}")
        rec.take("in flight before", _wait_in_flight, mgmt, 4)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        closed = pool.submit(_websocket_until_closed, ws, sent) if ws else None
        rec.take("not ready", _wait_status, f"{base}/health/ready", 503, sent)
        load = pool.submit(_load, base)
        rec.take("live during", get, f"{base}/health/live")
        rec.take("management ready during", get, f"{mgmt}/health/ready")
        rec.take("management live during", get, f"{mgmt}/health/live")
        rec.take("metrics during", get, base + "/metrics")
        rec.wait("load", load, timeout=30)
        rec.wait("short", short, timeout=30)
        rec.wait("stream", streamed, timeout=30)
        rec.take("management metrics after", get, mgmt + "/metrics")
        if closed is not None:
            rec.wait("websocket", closed, timeout=30)
        rec.wait("long", long, timeout=30)
        rec.values["long finished"] = time.monotonic() - sent
        rec.take("exit", server.process.wait, timeout=DELAY + DRAIN + 3 + SLACK)
        rec.values["exit after"] = time.monotonic() - sent
        rec.values["log"] = server.log()


def _prestop_run(app: str, launcher: str, rec: Record) -> None:
    port = free_port()
    mgmt = f"http://127.0.0.1:{port}"
    try:
        with (
            _serving(app, launcher, port, PRESTOP_DELAY) as server,
            ThreadPoolExecutor(1) as pool,
        ):
            base = server.url
            rec.take("keep-alive", _idle_keep_alive, server.port)
            hook = f"{base}/health/prestop"
            rec.take("prestop without token", get, hook)
            rec.take("prestop with a wrong token", get, hook, headers=_bearer("wrong"))
            rec.take("ready after refused hooks", get, f"{base}/health/ready")
            called = time.monotonic()
            answer = pool.submit(get, hook, headers=_bearer(TOKEN), timeout=PRESTOP_DELAY + 20)
            rec.take("not ready after hook", _wait_status, f"{mgmt}/health/ready", 503, called)
            rec.take("metrics during hook", get, base + "/metrics")
            rec.take("management metrics during hook", get, mgmt + "/metrics")
            rec.take("management prestop", get, f"{mgmt}/health/prestop", timeout=30)
            rec.wait("prestop", answer, timeout=30)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)  # what the kubelet does next
            rec.take("prestop exit", server.process.wait, timeout=DRAIN + 3 + SLACK)
            rec.values["prestop exit after"] = time.monotonic() - sent
            rec.values["prestop log"] = server.log()
    except Exception as exc:
        rec.errors["prestop run"] = f"{type(exc).__name__}: {exc}"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _wait_status(url: str, status: int, since: float) -> float:
    """Seconds from *since* until *url* answers *status* (polled)."""
    if not wait_until(lambda: get(url, timeout=5).status == status, timeout=5):
        raise TimeoutError(f"{url} never answered {status}")
    return time.monotonic() - since


def _wait_in_flight(management: str, count: int) -> float:
    """The in-flight gauge once it reaches *count*, read where nothing counts itself."""

    def gauge() -> float:
        return value(get(management + "/metrics").scrape(), "gracekit_requests_in_flight")

    if not wait_until(lambda: gauge() >= count, timeout=10):
        raise TimeoutError(f"fewer than {count} requests in flight: {gauge()}")
    return gauge()


def _load(base: str) -> list[tuple[int, str | None]]:
    """A small bounded load during the delay: (status, Connection header) of each request."""
    seen: list[tuple[int, str | None]] = []
    until = time.monotonic() + LOAD_SECONDS
    with httpx.Client(base_url=base, timeout=5) as client:
        while time.monotonic() < until and len(seen) < LOAD_MAX:
            path = "/" if len(seen) % 2 else f"/items/{len(seen)}"
            response = client.get(path)
            seen.append((response.status_code, response.headers.get("connection")))
    return seen


def _read_stream(url: str) -> tuple[int, int, bool]:
    """(status, chunks read, whether the response ended cleanly)."""
    chunks, status = 0, 0
    try:
        with httpx.stream("GET", url, timeout=30) as response:
            status = response.status_code
            for _ in response.iter_lines():
                chunks += 1
    except httpx.HTTPError:
        return status, chunks, False
    return status, chunks, True


def _websocket_until_closed(ws: ClientConnection, since: float) -> tuple[str, int | None, float]:
    """Echo once during the delay, then wait for the server's close: (echo, code, seconds)."""
    with ws:
        ws.send("during the delay")
        echo = str(ws.recv(timeout=10))
        try:
            ws.recv(timeout=DELAY + 10)
        except ConnectionClosed as closed:
            code = None if closed.rcvd is None else closed.rcvd.code
            return echo, code, time.monotonic() - since
    raise AssertionError("the websocket got a message instead of its close")


def _idle_keep_alive(port: int) -> tuple[int, int | None, float]:
    """Two requests on one connection, KEEP_ALIVE_IDLE seconds apart, as a proxy reuses a
    pooled connection: (first status, second status or None if the server had closed it,
    the idle time)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        first = _exchange(sock, reader)
        answered = time.monotonic()
        time.sleep(KEEP_ALIVE_IDLE)  # the stimulus: an idle pooled connection, not a wait
        idle = time.monotonic() - answered
        try:
            second: int | None = _exchange(sock, reader)
        except (ConnectionError, ValueError):
            second = None
    return first, second, idle


def _exchange(sock: socket.socket, reader: Any) -> int:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: matrix\r\n\r\n")
    status_line = reader.readline()
    if not status_line:
        raise ConnectionError("closed by the server")
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, rest = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(rest)
    reader.read(length)
    return int(status_line.split()[1])
