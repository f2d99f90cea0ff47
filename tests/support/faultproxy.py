"""A fault-injecting TCP proxy that makes a real service misbehave on purpose.

Tests point a client at the proxy instead of the service (PostgreSQL, Redis, ...) and switch
the proxy between modes; the real service is never stopped or reconfigured::

    with FaultProxy("127.0.0.1", 6379) as proxy:
        client = redis.Redis(host=proxy.host, port=proxy.port)
        proxy.hang()          # the "server" stops answering
        ...
        proxy.pass_through()  # and recovers, on the same port

The proxy runs its own asyncio loop in a daemon thread, so it works the same from sync tests,
from anyio/asyncio tests and alongside subprocesses. Every mode method blocks until the new
mode is in force, so a test can switch and immediately rely on it.

Modes:

``pass``
    Forward bytes both ways.
``refuse``
    Close the listening socket (new connects get ECONNREFUSED) and abort every existing
    connection with a reset.
``hang``
    Keep accepting, keep every connection open, but forward nothing: bytes are read and
    dropped in both directions, like a peer that stopped answering. A connection that lost
    bytes this way cannot be trusted any more, so leaving ``hang`` resets it; connections
    that stayed idle during the hang carry on.
``delay``
    Forward, but hold each chunk for a number of seconds first (both directions, existing
    connections included). Chunks of one direction stay in order, one after the other.
``reset``
    Accept new connections and abort them at once with a reset (SO_LINGER 0); existing
    connections are reset too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

Mode = Literal["pass", "refuse", "hang", "delay", "reset"]

_CALL_TIMEOUT = 10.0  # seconds a caller waits for the loop thread before giving up
_CHUNK = 1 << 20  # read size and stream buffer limit, in bytes
_RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds: close() sends a reset


@dataclass(eq=False)
class _Connection:
    """A client connection and, once it is connected, its upstream twin."""

    client: asyncio.StreamWriter
    task: asyncio.Task[Any]
    upstream: asyncio.StreamWriter | None = None
    dropped: bool = False  # bytes were thrown away in hang mode
    aborted: bool = False

    def abort(self) -> None:
        """Reset the client side and drop the upstream side, without waiting. Again after an
        upstream connected late (while the client side was being reset), it drops that one."""
        if not self.aborted:
            self.aborted = True
            sock = self.client.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
            self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()  # does nothing the second time

    def close(self) -> None:
        """Close both sides after flushing what is already buffered."""
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    async def wait_closed(self) -> None:
        """Wait until both sockets are closed."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


class FaultProxy:
    """TCP proxy on 127.0.0.1:<free port> forwarding to (target_host, target_port).

    It runs its own asyncio loop in a daemon thread, so it works from sync tests, from
    anyio/asyncio tests and alongside subprocesses. Use it as a context manager, or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.host = "127.0.0.1"
        self.target_host = target_host
        self.target_port = target_port
        self._port = 0
        self._mode: Mode = "pass"
        self._delay = 0.0
        self._accepted = 0
        self._connections: set[_Connection] = set()
        self._changed = threading.Condition()  # guards the counters; notified on changes
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start the loop thread and listen on a free port; return self."""
        if self._thread is not None or self._closed:
            raise RuntimeError("a FaultProxy can only be started once")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._main(ready),),
            name=f"FaultProxy->{self.target_host}:{self.target_port}",
            daemon=True,
        )
        self._thread.start()
        try:
            ready.result(_CALL_TIMEOUT)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the listener and every connection, then stop and join the thread.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return  # never started, or start() failed before the loop existed
        try:
            asyncio.run_coroutine_threadsafe(self._stop_listening(), loop).result(_CALL_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(_CALL_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{thread.name} did not stop within {_CALL_TIMEOUT} s")

    def __enter__(self) -> FaultProxy:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port, chosen at start() and kept for the proxy's whole life."""
        if not self._port:
            raise RuntimeError("the FaultProxy has not been started")
        return self._port

    @property
    def mode(self) -> Mode:
        """The current mode: "pass", "refuse", "hang", "delay" or "reset"."""
        return self._mode

    @property
    def accepted(self) -> int:
        """Connections accepted since start."""
        with self._changed:
            return self._accepted

    @property
    def active(self) -> int:
        """Client connections currently open through the proxy."""
        with self._changed:
            return len(self._connections)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true, re-checking whenever a counter changes.

        Raises TimeoutError if it is still false after *timeout* seconds. Example:
        ``proxy.wait_until(lambda: proxy.active == 0)``.
        """
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise TimeoutError(
                    f"condition still false after {timeout} s "
                    f"(accepted={self._accepted}, active={len(self._connections)})"
                )

    # -- modes --------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward normally; reopen the listener on the same port if it was closed."""
        self._call(self._apply("pass"))

    def refuse(self) -> None:
        """Close the listener (new connects are refused) and reset existing connections."""
        self._call(self._apply("refuse"))

    def hang(self) -> None:
        """Accept and keep connections open, but read and drop every byte both ways."""
        self._call(self._apply("hang"))

    def delay(self, seconds: float) -> None:
        """Forward, but hold every chunk *seconds* first, on existing connections too."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, not {seconds}")
        self._call(self._apply("delay", seconds))

    def reset(self) -> None:
        """Reset new connections as soon as they are accepted, and existing ones now."""
        self._call(self._apply("reset"))

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run *coro* on the loop thread and wait for it (and for its exception)."""
        if self._loop is None or self._closed:
            coro.close()
            raise RuntimeError("the FaultProxy is not running")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT)

    # -- loop thread --------------------------------------------------------------------

    async def _main(self, ready: concurrent.futures.Future[None]) -> None:
        """The thread's whole life: listen, report to start(), wait for close()."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._listen()
        except Exception as exc:
            ready.set_exception(exc)
        else:
            ready.set_result(None)
        await self._stop.wait()

    async def _apply(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch to *mode* and deal with the listener and existing connections."""
        leaving_hang = self._mode == "hang" and mode != "hang"
        self._mode, self._delay = mode, delay
        if mode == "refuse":
            await self._stop_listening()
            return
        await self._listen()
        if mode == "reset":
            await self._kill(list(self._connections))
        elif leaving_hang:
            await self._kill([conn for conn in self._connections if conn.dropped])

    async def _listen(self) -> None:
        """Open the listener, on the port chosen the first time, unless it is open."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            port = sock.getsockname()[1]
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=_CHUNK)
        except BaseException:
            sock.close()
            raise
        self._port = port

    async def _stop_listening(self) -> None:
        """Close the listener, then reset every connection and wait until all are gone."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._kill(list(self._connections))
        if server is not None:
            await server.wait_closed()

    async def _kill(self, victims: list[_Connection]) -> None:
        """Reset *victims* and wait until their sockets are closed."""
        for conn in victims:
            conn.abort()
            conn.task.cancel()
        await asyncio.gather(*(conn.task for conn in victims), return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Track one client connection from accept to close; the stream server's callback."""
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(writer, task)
        with self._changed:
            self._accepted += 1
            self._connections.add(conn)
            self._changed.notify_all()
        try:
            await self._serve(conn, reader)
        except asyncio.CancelledError:
            # Killed by _kill() (or the loop is shutting down), possibly while closing. End
            # normally: Python 3.11's stream server logs a cancelled callback task as an error.
            conn.abort()
        finally:
            with self._changed:
                self._connections.discard(conn)
                self._changed.notify_all()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        """Connect upstream and forward both ways, then close or reset both sides."""
        graceful = False
        try:
            if self._mode == "reset" or self._server is None:
                return  # reset (or refused, or closing): the finally clause resets it
            try:
                upstream_reader, conn.upstream = await asyncio.open_connection(
                    self.target_host, self.target_port, limit=_CHUNK
                )
            except OSError:
                graceful = True  # the target is down: just close the client connection
                return
            if conn.aborted:
                return  # reset while connecting: the finally clause drops the new upstream
            await asyncio.gather(
                self._pump(conn, reader, conn.upstream),
                self._pump(conn, upstream_reader, conn.client),
            )
            graceful = not conn.aborted
        finally:
            if graceful:
                conn.close()
            else:
                conn.abort()
            await conn.wait_closed()

    async def _pump(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Copy one direction until EOF, applying the mode current for each chunk."""
        try:
            while data := await reader.read(_CHUNK):
                if self._mode == "delay":
                    await asyncio.sleep(self._delay)
                if self._mode == "hang":
                    conn.dropped = True
                    continue
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()  # pass a half-close on
        except OSError:  # ConnectionResetError, BrokenPipeError, ...
            conn.abort()  # a broken side breaks the other one, which ends the other pump
