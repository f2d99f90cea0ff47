"""The rollout's HTTP/1.1 client against a real socket: a tiny server that writes raw bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest

from gracekit.rollout import http1
from gracekit.rollout.config import LoadSettings
from gracekit.rollout.errors import BadResponse
from gracekit.rollout.load import Load
from gracekit.rollout.timeline import Timeline

pytestmark = pytest.mark.timeout(30)


@dataclass
class RawServer:
    """Answers every request head it reads with *reply*, written part by part (each part
    flushed before the next); with *close*, closes the connection after the first answer,
    otherwise keeps it open for more. Counts the requests each connection carried."""

    reply: Sequence[bytes]
    close: bool
    port: int = 0
    requests: list[int] = field(default_factory=list)  # one entry per connection
    heads: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.requests)
        self.requests.append(0)
        try:
            while True:
                try:
                    self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests[index] += 1
                for part in self.reply:
                    writer.write(part)
                    await writer.drain()
                if self.close:
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(*reply: bytes, close: bool = True) -> AsyncIterator[RawServer]:
    server = RawServer(reply, close=close)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


async def fetch(server: RawServer) -> http1.Response:
    connection = await http1.Connection.open("127.0.0.1", server.port)
    try:
        with anyio.fail_after(10):
            return await connection.request("/", host=f"127.0.0.1:{server.port}")
    finally:
        connection.close()


def answer(*reply: bytes) -> http1.Response:
    async def run() -> http1.Response:
        async with serving(*reply) as server:
            return await fetch(server)

    return asyncio.run(run())


def test_responses_are_read_by_length_chunks_or_close() -> None:
    response = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Version: v2\r\n\r\nhelloEXTRA")
    assert (response.status, response.body, response.header("x-version")) == (200, b"hello", "v2")
    assert response.keep_alive
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
    )
    assert answer(chunked).body == b"abcde"
    closed = answer(b"HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\nno upstream")
    assert (closed.status, closed.body, closed.keep_alive) == (503, b"no upstream", False)
    assert answer(b"HTTP/1.1 204 No Content\r\n\r\n").body == b""


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", BadResponse),
        (b"HTTP/1.1 OK 200\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", asyncio.IncompleteReadError),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            asyncio.IncompleteReadError,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", asyncio.IncompleteReadError),
        (b"", asyncio.IncompleteReadError),
    ],
)
def test_bad_or_cut_responses(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        answer(data)


def test_repeated_headers_are_all_kept() -> None:
    response = answer(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nContent-Length: 0\r\n"
        b"Vary: Accept\r\nset-cookie: b=2\r\nVary: Origin\r\n\r\n"
    )
    assert response.header_values("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert response.header("vary") == "Accept, Origin"
    assert response.header("x-missing", "none") == "none"
    assert [name for name, _ in response.headers] == [
        "set-cookie", "content-length", "vary", "set-cookie", "vary"
    ]  # fmt: skip


def test_an_http10_body_without_length_is_read_to_the_close() -> None:
    # More than a StreamReader holds at once (it pauses the socket at 128 KiB), in two writes:
    # a client that takes one read for the body gets a piece of it.
    body = bytes(range(256)) * 8192  # 2 MiB
    response = answer(b"HTTP/1.0 200 OK\r\nX-Version: v1\r\n\r\n" + body[:1000], body[1000:])
    assert (response.status, len(response.body), response.body == body) == (200, len(body), True)
    assert not response.keep_alive  # HTTP/1.0 closes unless it says keep-alive


def test_a_chunked_body_split_across_writes_leaves_the_connection_reusable() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
        b"cd\r\n6;name=value\r\nef\r\ngh\r\n",
        b"0\r\nX-Trailer: t\r\n\r\n",
    )

    async def run() -> tuple[list[http1.Response], list[int]]:
        async with serving(*reply, close=False) as server:
            connection = await http1.Connection.open("127.0.0.1", server.port)
            try:
                with anyio.fail_after(10):
                    responses = [await connection.request("/", host="h") for _ in range(2)]
                    assert connection.reusable
            finally:
                connection.close()
            return responses, server.requests

    responses, requests = asyncio.run(run())
    assert [r.body for r in responses] == [b"abcdef\r\ngh"] * 2
    assert requests == [2]  # one connection carried both


CLOSING_REPLIES = {
    "connection close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "close among repeated connection headers": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\n"
        b"Content-Length: 2\r\n\r\nok"
    ),
    "http/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.parametrize("reply", CLOSING_REPLIES.values(), ids=CLOSING_REPLIES)
def test_a_connection_the_server_closes_is_not_reused(reply: bytes) -> None:
    async def run() -> tuple[http1.Response, bool]:
        # The server keeps the socket open: only the headers say the connection is done.
        async with serving(reply, close=False) as server:
            connection = await http1.Connection.open("127.0.0.1", server.port)
            try:
                with anyio.fail_after(10):
                    response = await connection.request("/", host="h")
                return response, connection.reusable
            finally:
                connection.close()

    response, reusable = asyncio.run(run())
    assert (response.body, response.keep_alive, reusable) == (b"ok", False, False)


def test_a_request_that_asks_for_the_close_leaves_nothing_to_reuse() -> None:
    async def run() -> tuple[http1.Response, bool, bytes]:
        async with serving(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as server:
            connection = await http1.Connection.open("127.0.0.1", server.port)
            try:
                with anyio.fail_after(10):
                    response = await connection.request("/p", host="h", close=True)
                with pytest.raises(RuntimeError, match="cannot carry another request"):
                    await connection.request("/p", host="h")
                return response, connection.reusable, server.heads[0]
            finally:
                connection.close()

    response, reusable, head = asyncio.run(run())
    assert (response.keep_alive, reusable) == (False, False)
    assert head.startswith(b"GET /p HTTP/1.1\r\n")
    assert b"\r\nconnection: close\r\n" in head.lower()


def load_through(reply: bytes, *, requests: int) -> tuple[list[str], list[int]]:
    """Send *requests* keep-alive requests one after another (10 a second) with the
    simulator's load; the outcomes and the requests each connection carried."""
    settings = LoadSettings(rate=10, keepalive_share=1.0, slow_share=0.0, keepalive_expiry=30)

    async def run() -> tuple[list[str], list[int]]:
        async with serving(reply, close=False) as server:
            load = Load(settings, port=server.port, timeline=Timeline(), max_requests=requests)
            with anyio.fail_after(20):
                await load.run()
            return [o.kind for o in load.outcomes], server.requests

    return asyncio.run(run())


def test_the_load_reuses_a_kept_alive_connection() -> None:
    kinds, per_connection = load_through(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", requests=4
    )
    assert kinds == ["ok"] * 4
    assert sum(per_connection) == 4
    assert len(per_connection) < 4  # a connection carried more than one request


@pytest.mark.parametrize("reply", CLOSING_REPLIES.values(), ids=CLOSING_REPLIES)
def test_the_load_opens_a_new_connection_after_a_close(reply: bytes) -> None:
    kinds, per_connection = load_through(reply, requests=4)
    assert kinds == ["ok"] * 4
    assert per_connection == [1, 1, 1, 1]
