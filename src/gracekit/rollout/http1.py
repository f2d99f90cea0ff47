"""A minimal HTTP/1.1 client on asyncio streams, for the load, the probes and Envoy's admin.

The simulator needs to tell a refused connection from a reset one and from a timeout, and to
control exactly when a connection is reused; a general-purpose client hides both. This reads
one response at a time (Content-Length, chunked, or up to the close) and nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import BadResponse

__all__ = ["Response", "get", "read_response", "request_bytes"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    """One response: its status, its headers (names in lower case) and its body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        return "close" not in self.headers.get("connection", "").lower()


def request_bytes(
    path: str, *, host: str, close: bool = False, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A GET request for *path*; with *close*, asking the server to close afterwards; with
    *headers* added (a preStop hook's ``httpHeaders``)."""
    connection = "close" if close else "keep-alive"
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gracekit-rollout\r\n"
        f"{extra}Connection: {connection}\r\n\r\n"
    ).encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one response from *reader*.

    Raises:
        asyncio.IncompleteReadError: the connection closed before the response was complete.
        BadResponse: what arrived is not an HTTP/1.x response.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadResponse("response head too long") from None
    if len(head) > _MAX_HEAD:
        raise BadResponse("response head too long")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Response(status, headers, await _read_body(reader, status, headers))


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    if status < 200 or status in (204, 304):
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > _MAX_BODY:
            raise BadResponse(f"bad Content-Length {length!r}")
        return await reader.readexactly(int(length))
    return await reader.read(_MAX_BODY)  # delimited by the close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadResponse(f"bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(body)
        if len(body) + size > _MAX_BODY:
            raise BadResponse("response body too long")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def get(
    host: str, port: int, path: str, *, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """GET *path* on a fresh connection that the server is asked to close, as the kubelet's
    probes do. The caller bounds the time (a cancel scope); errors are the socket's own."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes(path, host=f"{host}:{port}", close=True, headers=headers))
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()
