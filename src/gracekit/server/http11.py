"""A small HTTP/1.1 server for gracekit's own endpoints, on the application's event loop.

The management port serves probes, metrics and the preStop hook: tiny GET and POST requests
from the kubelet and Prometheus. It runs on the loop the application runs on (so liveness still
says whether that loop makes progress), under any ASGI server, and it has to stay up through a
flood or a malformed request. So it is deliberately small: h11 parses, every request is bounded
(head size, body size, time to arrive, connections), every answer says ``Cache-Control:
no-store`` and carries no server banner, and a request it cannot parse gets a 4xx, never a
crash.

It is an asyncio protocol rather than streams and a task per connection: the kubelet opens a
connection per probe, and a connection's setup is most of what a probe costs (measured: about
200 us of CPU a probe this way, 340 us with streams).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

from .._optional import require

require("h11", extra="uvicorn", feature="gracekit's management port")

import h11  # noqa: E402 - after the check that names the extra

__all__ = ["SmallServer"]

logger = logging.getLogger("gracekit")

MAX_HEAD = 8 * 1024  # bytes of request line and headers
MAX_BODY = 4 * 1024  # bytes of request body (probes and hooks send none)
REQUEST_TIMEOUT = 10.0  # seconds for a whole request to arrive
IDLE_TIMEOUT = 5.0  # seconds a keep-alive connection may wait for its next request
MAX_CONNECTIONS = 256
_NO_STORE = (b"cache-control", b"no-store")


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            # Each worker process of one pod (gracekit run --workers, gunicorn) binds the port
            # too; the kernel spreads the probes over them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Refused(Exception):
    """The request cannot be served: answer *status* and close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection: h11 parses, one request at a time, each answered by the app."""

    def __init__(self, server: SmallServer) -> None:
        self.server = server
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.request: h11.Request | None = None
        self.head = 0  # bytes received towards the current request's head
        self.body = 0

    # -- asyncio's side --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        if len(self.server.connections) >= MAX_CONNECTIONS:
            transport.close()  # over the limit: the probe fails and is retried, the loop is safe
            return
        self.server.connections.add(self)
        self._time_out_after(IDLE_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            if not self.head and data:
                self._time_out_after(REQUEST_TIMEOUT)  # a request has begun to arrive
            self.head += len(data)
        self.conn.receive_data(data)
        if self.task is None:
            self._process()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        if self.task is None:
            self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()  # the client left: nobody waits for the answer

    # -- requests --------------------------------------------------------------------------

    def _process(self) -> None:
        """Take the events h11 has ready, until a request is whole (then answer it) or more
        data is needed."""
        try:
            while True:
                if self.request is None and self.head > MAX_HEAD + 64 * 1024:
                    raise _Refused(431)  # h11 bounds a head still arriving, not a whole one
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    self._close()
                    return
                if isinstance(event, h11.Request):
                    size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                    if size > MAX_HEAD:
                        raise _Refused(431)
                    self.request, self.body = event, 0
                    self._time_out_after(REQUEST_TIMEOUT)
                elif isinstance(event, h11.Data):
                    self.body += len(event.data)
                    if self.body > MAX_BODY:
                        raise _Refused(413)
                elif isinstance(event, h11.EndOfMessage):
                    self._cancel_timer()
                    self.task = asyncio.ensure_future(self._answer(self._scope()))
                    return
        except _Refused as refused:
            self._error(refused.status)
        except h11.RemoteProtocolError as exc:
            self._error(exc.error_status_hint)

    def _scope(self) -> dict[str, Any]:
        request, transport = cast(h11.Request, self.request), self.transport
        raw_path, _, query = request.target.partition(b"?")
        peer = None if transport is None else transport.get_extra_info("peername")
        local = None if transport is None else transport.get_extra_info("sockname")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers],
            "client": None if peer is None else (peer[0], peer[1]),
            "server": None if local is None else (local[0], local[1]),
            "state": {},
        }

    async def _answer(self, scope: dict[str, Any]) -> None:
        started: list[Message] = []
        chunks: list[bytes] = []
        asked = False

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # nothing more will come; wait to be cancelled
            raise AssertionError("unreachable")  # pragma: no cover

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.server.app(scope, receive, send)
        except Exception:
            logger.exception("management endpoint %s failed", scope["path"])
            started.clear()
        self.task = None
        if not started:
            self._error(500)
            return
        self._respond(started[0], b"".join(chunks), head_only=scope["method"] == "HEAD")

    def _respond(self, start: Message, data: bytes, *, head_only: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"server"]
        if not any(k.lower() == b"cache-control" for k, _ in headers):
            headers.append(_NO_STORE)
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(data)).encode()))
        transport.write(self.conn.send(h11.Response(status_code=start["status"], headers=headers)))
        if data and not head_only:
            transport.write(self.conn.send(h11.Data(data=data)))
        transport.write(self.conn.send(h11.EndOfMessage()))
        if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
            self._close()
            return
        self.conn.start_next_cycle()
        self.request, self.head = None, 0
        self._time_out_after(IDLE_TIMEOUT)
        self._process()  # a request pipelined behind this one

    def _error(self, status: int) -> None:
        transport = self.transport
        if transport is not None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{status} {HTTPStatus(status).phrase}\n".encode()
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                _NO_STORE,
            ]
            try:
                transport.write(self.conn.send(h11.Response(status_code=status, headers=headers)))
                transport.write(self.conn.send(h11.Data(data=body)))
                transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
        self._close()

    # -- time and the end ------------------------------------------------------------------

    def _time_out_after(self, seconds: float) -> None:
        self._cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._close)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _close(self) -> None:
        """An idle keep-alive, a request too slow to arrive, or done: close the connection."""
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class SmallServer:
    """Serves *app* over HTTP/1.1 on *host*:*port* (0: any free port), one request at a time
    per connection, until :meth:`stop`."""

    def __init__(self, app: ASGIApp, *, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Bind and start accepting (raises OSError when the port is taken)."""
        sock = _listening_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock)

    async def stop(self) -> None:
        """Stop accepting, close every connection, and return once their answers are done."""
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = [c.task for c in self.connections if c.task is not None]
        for connection in list(self.connections):
            if connection.task is not None:
                connection.task.cancel()
            connection._close()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
