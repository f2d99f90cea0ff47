"""The management port's server: a second uvicorn ``Server`` on the application's event loop.

uvicorn brings the defences a port the whole cluster can reach needs: h11 parses and bounds a
request's head, reading pauses while a request is answered, and writing waits while the client
does not read (its answers cannot pile up in memory). What uvicorn leaves to whoever runs it in
front, this module adds in a subclass of its h11 protocol:

- a connection budget that keeps room for the kubelet, which opens a connection per probe and
  sends its request at once: when it is full, a new connection closes a kept-alive one (it has
  had an answer), the one quiet for longest, even mid-answer; failing that, the oldest one not
  being answered (idle, still sending its head, not reading its answer). A connection whose
  first request is being answered is never closed for room, and the kubelet's is the newest;
- a head timeout: a request's line and headers must be whole within :data:`HEAD_TIMEOUT`
  seconds of the connection opening or of their first byte (uvicorn has none: a client sending
  a byte a second would hold its connection for ever);
- a write timeout: an answer the client does not read for :data:`WRITE_TIMEOUT` seconds closes
  the connection;
- no pipelining: when a request arrives before the one ahead of it has been answered, the
  connection closes after that answer and the requests behind it are dropped (each read's worth
  of them would be held, and answered in turn to a client that need not read);
- ``Cache-Control: no-store`` on uvicorn's own 400, no access log, and none of uvicorn's
  informational log lines (the application's server prints its own).

The server is driven through ``startup()``, ``main_loop()`` and ``shutdown()``, never
``serve()``, which would take over the signals. ``tests/test_management_uvicorn.py`` pins every
part of uvicorn this relies on.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import socket
from typing import Any

from starlette.types import ASGIApp

from .._optional import require

require("uvicorn", extra="uvicorn", feature="gracekit's management port")

import h11  # noqa: E402 - after the check that names the extra
import uvicorn  # noqa: E402
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

__all__ = ["HEAD_TIMEOUT", "IDLE_TIMEOUT", "MAX_CONNECTIONS", "MAX_HEAD", "ManagementServer"]

MAX_HEAD = 8 * 1024  # bytes of request line and headers
MAX_CONNECTIONS = 256
HEAD_TIMEOUT = 5.0  # seconds for a request's head to arrive whole
IDLE_TIMEOUT = 5  # seconds a kept-alive connection may wait for its next request (uvicorn's)
WRITE_TIMEOUT = 10.0  # seconds an answer may wait for the client to read it
STOP_TIMEOUT = 2  # seconds the answers in progress get when the port closes

_ANSWERING = (h11.SEND_RESPONSE, h11.SEND_BODY)
_SENT = (h11.DONE, h11.MUST_CLOSE)  # the client's side of a request it has sent whole
_BAD_REQUEST = b"400 Bad Request\n"

# Set in the management server's task; everything it starts (connections, answers) inherits it.
_SERVING = contextvars.ContextVar("gracekit_management_serving", default=False)


class _ClientNoise(logging.Filter):
    """Drops uvicorn's log records below ERROR that the management server causes: its startup
    and shutdown lines (the application's server prints the same), and a warning per malformed
    request, which anyone who can reach the port could otherwise fill the log with."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not _SERVING.get()


_FILTER = _ClientNoise()
_UVICORN_LOGGER = "uvicorn.error"
_filter_users = 0  # management servers running in this process (tests run several)


def _quiet_uvicorn(on: bool) -> None:
    global _filter_users
    _filter_users += 1 if on else -1
    logger = logging.getLogger(_UVICORN_LOGGER)
    if _filter_users > 0:
        logger.addFilter(_FILTER)  # once: addFilter ignores one already there
    else:
        logger.removeFilter(_FILTER)


class _Budget:
    """The connections of one server and the room kept for new ones: those not answered yet, in
    the order they opened, and those answered at least once (kept alive), in the order they last
    sent a request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fresh: dict[_GuardedProtocol, None] = {}
        self.kept: dict[_GuardedProtocol, None] = {}

    def admit(self, connection: _GuardedProtocol) -> bool:
        """Take *connection* in, closing another when full; False: no room for it.

        The one closed is kept alive if any is (it has had an answer, and the kubelet opens a
        connection per probe): the one quiet for longest, even mid-answer. Otherwise the oldest
        one not being answered (idle, still sending its head, or not reading its answer).
        """
        if len(self.fresh) + len(self.kept) >= self.limit:
            victim = next(iter(self.kept), None) or next((c for c in self.fresh if c.spare()), None)
            if victim is None:
                return False
            self.release(victim)
            victim.transport.abort()
        self.fresh[connection] = None
        return True

    def progressed(self, connection: _GuardedProtocol) -> None:
        """*connection*, kept alive, sent a request: it is the last of those to be closed."""
        if self.kept.pop(connection, 0) is None:
            self.kept[connection] = None

    def answered(self, connection: _GuardedProtocol) -> None:
        """*connection* has had its first answer."""
        if self.fresh.pop(connection, 0) is None:
            self.kept[connection] = None

    def release(self, connection: _GuardedProtocol) -> None:
        self.fresh.pop(connection, None)
        self.kept.pop(connection, None)


class _GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a connection budget, a head timeout and a write timeout."""

    def __init__(self, *args: Any, budget: _Budget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False  # the kubelet's probes every few seconds are not news
        self._budget = budget
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._pipelined = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._budget.admit(self):
            transport.abort()  # every connection is being answered: this one waits its turn
            return
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_too_slow)

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # Part of a head: it has HEAD_TIMEOUT to be whole (from the connection's start if
            # it is the first, from its first byte if it follows a kept-alive answer).
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_too_slow)
        else:
            self._cancel("_head_timer")
            if self.conn.their_state in _SENT and self.conn.trailing_data[0]:
                # Another request behind this one, sent before its answer: pipelining, which
                # neither the kubelet nor Prometheus does. Served, a client that never reads
                # would have each read's worth of requests held and answered in turn, at no
                # cost of its own: this answer is the connection's last.
                self._pipelined = True
            if waiting:  # a whole head arrived
                self._budget.progressed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._budget.release(self)
        self._cancel("_head_timer")
        self._cancel("_write_timer")
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._budget.answered(self)
        if self._pipelined:
            self.transport.close()  # uvicorn starts no next request on a closing transport
        super().on_response_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(WRITE_TIMEOUT, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_write_timer")

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request it cannot parse, with the headers of every answer here.
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(_BAD_REQUEST)).encode()),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
        ]
        try:
            head = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
            self.transport.write(self.conn.send(head))
            self.transport.write(self.conn.send(h11.Data(data=_BAD_REQUEST)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass  # an answer had begun: only the close is left
        self.transport.close()

    def spare(self) -> bool:
        """True unless a request is being answered (and the client reads the answer)."""
        return self._write_timer is not None or self.conn.our_state not in _ANSWERING

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE:
            self.transport.close()

    def _cancel(self, name: str) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)


class ManagementServer:
    """Serves *app* on the listening socket *sock* until :meth:`stop`."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        self.sock = sock
        self.budget = _Budget(MAX_CONNECTIONS)
        config = uvicorn.Config(
            app,
            http=functools.partial(_GuardedProtocol, budget=self.budget),  # type: ignore[arg-type]
            ws="none",  # an upgrade request is answered as plain HTTP
            lifespan="off",  # the application's lifespan is the one running this
            interface="asgi3",
            log_config=None,  # the application's logging stays as it is
            log_level=None,
            proxy_headers=False,  # the client is the socket's peer, never a header's claim
            server_header=False,
            date_header=False,
            timeout_keep_alive=IDLE_TIMEOUT,
            timeout_graceful_shutdown=STOP_TIMEOUT,
            h11_max_incomplete_event_size=MAX_HEAD,
        )
        config.load()
        self._server = uvicorn.Server(config)
        # What Server._serve() sets before startup(); serve() itself would capture signals.
        self._server.lifespan = config.lifespan_class(config)
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def start(self) -> None:
        """Start accepting; raises what the server's startup raised."""
        _quiet_uvicorn(True)
        context = contextvars.copy_context()
        context.run(_SERVING.set, True)
        self._task = context.run(asyncio.ensure_future, self._run())
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            started.cancel()
            _quiet_uvicorn(False)
            await self._task  # raises the startup's error

    async def _run(self) -> None:
        await self._server.startup(sockets=[self.sock])
        self._started.set()
        await self._server.main_loop()
        await self._server.shutdown(sockets=[self.sock])

    async def stop(self) -> None:
        """Stop accepting, let the answers in progress finish (up to 2 s), close the rest."""
        self._server.should_exit = True
        try:
            if self._task is not None:
                await self._task
        finally:
            _quiet_uvicorn(False)
