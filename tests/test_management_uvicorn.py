"""What the management port relies on in uvicorn (gracekit/server/_management_server.py): if a
release changes one of these, this file fails before users find out. Behaviour, not source."""

from __future__ import annotations

import asyncio
import inspect
import logging

import h11
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gracekit.server import _management_socket as management_socket
from gracekit.server._management_server import ManagementServer

pytestmark = pytest.mark.anyio


def test_the_protocol_hooks_the_subclass_overrides_exist() -> None:
    hooks = ("connection_made", "data_received", "connection_lost", "send_400_response")
    for name in (*hooks, "on_response_complete"):
        assert callable(getattr(H11Protocol, name)), name
    # Closing the transport before the answer's completion is handed on stops the next
    # (pipelined) request from being started; h11 shows what was received beyond a request.
    assert "self.transport.is_closing()" in inspect.getsource(H11Protocol.on_response_complete)
    assert isinstance(getattr(h11.Connection, "trailing_data", None), property)
    # The server calls the protocol class with these keywords, and reads these attributes.
    assert set(inspect.signature(H11Protocol.__init__).parameters) >= {
        "config", "server_state", "app_state", "_loop",
    }  # fmt: skip
    source = inspect.getsource(H11Protocol)
    for attribute in ("self.conn", "self.transport", "self.loop", "self.access_log"):
        assert attribute in source, attribute


def test_the_server_is_driven_without_serve() -> None:
    for name in ("startup", "main_loop", "shutdown"):
        assert inspect.iscoroutinefunction(getattr(uvicorn.Server, name)), name
    assert "sockets" in inspect.signature(uvicorn.Server.startup).parameters
    # startup() reads the lifespan that _serve() sets; ManagementServer sets it the same way.
    assert "self.lifespan" in inspect.getsource(uvicorn.Server.startup)


async def test_a_management_server_changes_no_logging_and_no_signals() -> None:
    import signal

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    loggers = ("uvicorn", "uvicorn.error", "uvicorn.access")
    before = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
        for name in loggers
    }
    handler = signal.getsignal(signal.SIGTERM)
    sock = management_socket.bind("127.0.0.1", 0)
    server = ManagementServer(app, sock)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    writer.write(b"BROKEN\r\n\r\n")
    assert (await reader.read(-1)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    await server.stop()
    assert signal.getsignal(signal.SIGTERM) == handler
    after = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
        for name in loggers
    }
    assert after == before
    assert logging.getLogger("uvicorn.error").filters == [], "the filter goes with the server"
