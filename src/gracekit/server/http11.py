"""A small HTTP/1.1 server for gracekit's own endpoints, on the application's event loop.

The management port serves probes, metrics and the preStop hook: tiny GET and POST requests
from the kubelet and Prometheus. It runs on the loop the application runs on (so liveness still
says whether that loop makes progress), under any ASGI server, and it has to stay up through a
flood or a malformed request. So it is deliberately small: h11 parses, every request is bounded
(head size, body size, time to arrive, connections), every answer says ``Cache-Control:
no-store`` and carries no server banner, and a request it cannot parse gets a 4xx, never a
crash.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import anyio
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
_READ = 64 * 1024
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

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class SmallServer:
    """Serves *app* over HTTP/1.1 on *host*:*port* (0: any free port), one request at a time
    per connection, until :meth:`stop`."""

    def __init__(self, app: ASGIApp, *, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind and start accepting (raises OSError when the port is taken)."""
        sock = _listening_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock, limit=_READ)

    async def stop(self) -> None:
        """Stop accepting, close every connection, and return once they are gone."""
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= MAX_CONNECTIONS:
            writer.close()  # over the limit: the probe fails and is retried, the loop is safe
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the peer went away
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        while True:
            wait = IDLE_TIMEOUT if conn.their_state is h11.IDLE else REQUEST_TIMEOUT
            try:
                with anyio.fail_after(wait):
                    request = await self._next(conn, reader, h11.Request)
                    if request is None:
                        return
                    await self._read_body(conn, reader)
            except TimeoutError:
                return  # an idle keep-alive, or a request too slow to arrive
            except _Refused as refused:
                await self._error(conn, writer, refused.status)
                return
            except h11.RemoteProtocolError as exc:
                await self._error(conn, writer, exc.error_status_hint)
                return
            assert isinstance(request, h11.Request)
            await self._respond(conn, writer, self._scope(request, peer, local))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _next(
        self, conn: h11.Connection, reader: asyncio.StreamReader, wanted: type
    ) -> Any | None:
        received = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(_READ)
                received += len(data)
                if wanted is h11.Request and received > MAX_HEAD + _READ:
                    # h11 bounds a head still arriving, not one that arrives whole.
                    raise _Refused(431, "request head too large")
                conn.receive_data(data)  # b"" tells h11 the peer closed
                continue
            if wanted is h11.Request and isinstance(event, h11.Request):
                head = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if head > MAX_HEAD:
                    raise _Refused(431, "request head too large")
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, wanted):
                return event
            if wanted is h11.Request:  # pragma: no cover - h11 yields a request first
                raise _Refused(400, "unexpected event")
            return event

    async def _read_body(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        size = 0
        while True:
            event = await self._next(conn, reader, object)
            if event is None or isinstance(event, h11.EndOfMessage):
                return
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise _Refused(413, "request body too large")

    @staticmethod
    def _scope(
        request: h11.Request, peer: tuple[str, int] | None, local: tuple[str, int] | None
    ) -> dict[str, Any]:
        raw_path, _, query = request.target.partition(b"?")
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

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, scope: dict[str, Any]
    ) -> None:
        started: list[Message] = []
        body: list[bytes] = []

        async def receive() -> Message:
            if not body and not started:
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # nothing more will come; wait to be cancelled
            raise AssertionError("unreachable")  # pragma: no cover

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:
            logger.exception("management endpoint %s failed", scope["path"])
            started.clear()
        if not started:
            await self._error(conn, writer, 500)
            return
        headers = [(k, v) for k, v in started[0].get("headers", []) if k.lower() != b"server"]
        if not any(k.lower() == b"cache-control" for k, _ in headers):
            headers.append(_NO_STORE)
        data = b"".join(body)
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(data)).encode()))
        writer.write(conn.send(h11.Response(status_code=started[0]["status"], headers=headers)))
        if data and scope["method"] != "HEAD":
            writer.write(conn.send(h11.Data(data=data)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    @staticmethod
    async def _error(conn: h11.Connection, writer: asyncio.StreamWriter, status: int) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{status} {HTTPStatus(status).phrase}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            _NO_STORE,
        ]
        try:
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except h11.LocalProtocolError:
            return
