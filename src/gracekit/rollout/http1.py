"""A small HTTP/1.1 client on asyncio streams and h11, for the load, the probes and Envoy's admin.

The simulator needs to tell a refused connection from a reset one and from a timeout, and to
control exactly when a connection is reused; a general-purpose client hides both. h11 does the
framing (Content-Length, chunked, or up to the close) and decides whether a connection may carry
another request (HTTP/1.0, ``Connection: close`` on either side); this module moves the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

try:
    import h11
except ImportError as exc:  # pragma: no cover - h11 comes with the rollout extra
    raise ImportError(
        "gracekit rollout needs the 'h11' package, which is not installed; "
        "install it with: pip install 'gracekit[rollout]'"
    ) from exc

from .errors import BadResponse

__all__ = ["Connection", "Response", "get"]

#: A response head still incomplete after this many bytes is refused (h11 checks it while it
#: waits for more, so a head may exceed it by up to one read).
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class Response:
    """One response: its status, its headers in the order received (names in lower case,
    repeated names kept), its body, and whether its connection may carry another request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    keep_alive: bool

    def header_values(self, name: str) -> list[str]:
        """Every value of the header *name* (any case), in the order received."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def header(self, name: str, default: str = "") -> str:
        """The header *name* (any case) as one value: repeated fields joined by ``", "``, as
        RFC 9110 allows for any field but ``Set-Cookie`` (use :meth:`header_values` for it);
        *default* when absent."""
        values = self.header_values(name)
        return ", ".join(values) if values else default


class Connection:
    """One client connection over *reader* and *writer*: a request, its response, and another
    only while :attr:`reusable`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to *host*:*port*; errors are the socket's own (ConnectionRefusedError...)."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    @property
    def reusable(self) -> bool:
        """Whether another request may go over this connection: the last exchange left it
        open on both sides (HTTP/1.1, no ``Connection: close``) and the server has not closed
        it since, as far as this side has seen."""
        return (
            self._h11.our_state is h11.IDLE
            and self._h11.their_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    async def request(
        self,
        path: str,
        *,
        host: str,
        close: bool = False,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """GET *path* and read its response; with *close*, the server is asked to close the
        connection afterwards; *headers* are added (a preStop hook's ``httpHeaders``).

        Raises:
            asyncio.IncompleteReadError: the connection closed before the response was
                complete.
            BadResponse: what arrived is not an HTTP/1.x response, or is too large.
            RuntimeError: the connection is not :attr:`reusable`.
        """
        if self._h11.our_state is not h11.IDLE:
            raise RuntimeError("this connection cannot carry another request")
        fields = [("Host", host), ("User-Agent", "gracekit-rollout"), *headers]
        fields.append(("Connection", "close" if close else "keep-alive"))
        self._send(h11.Request(method="GET", target=path, headers=fields))
        self._send(h11.EndOfMessage())
        await self.writer.drain()
        return await self._read_response()

    def _send(self, event: h11.Request | h11.EndOfMessage) -> None:
        self.writer.write(self._h11.send(event) or b"")  # None only for ConnectionClosed

    async def _read_response(self) -> Response:
        head: h11.Response | None = None
        body = bytearray()
        closed = False
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if closed:  # h11 found the message cut short by the close
                    raise asyncio.IncompleteReadError(bytes(body), None) from None
                raise BadResponse(f"not an HTTP/1.x response: {exc}") from None
            if event is h11.NEED_DATA:
                data = await self.reader.read(_READ_SIZE)
                closed = not data
                self._h11.receive_data(data)  # b"" tells h11 of the close
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise BadResponse("response body too long")
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return self._finish(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise asyncio.IncompleteReadError(bytes(body), None)
            # An h11.InformationalResponse (1xx) is skipped: the final response follows.

    def _finish(self, head: h11.Response, body: bytes) -> Response:
        keep_alive = self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE
        if keep_alive:
            self._h11.start_next_cycle()
        return Response(
            status=head.status_code,
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers
            ),
            body=body,
            keep_alive=keep_alive,
        )

    def close(self) -> None:
        """Close the connection (without waiting for the close to complete)."""
        self.writer.close()


async def get(
    host: str, port: int, path: str, *, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """GET *path* on a fresh connection that the server is asked to close, as the kubelet's
    probes do. The caller bounds the time (a cancel scope); errors are the socket's own."""
    connection = await Connection.open(host, port)
    try:
        return await connection.request(path, host=f"{host}:{port}", close=True, headers=headers)
    finally:
        connection.close()
