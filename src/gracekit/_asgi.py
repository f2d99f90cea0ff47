"""Small ASGI helpers shared by gracekit's own endpoints."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.types import Message, Scope, Send

PlainResponse = tuple[int, list[tuple[bytes, bytes]], bytes]

NO_STORE = (b"cache-control", b"no-store")


def route_path(scope: Scope) -> str:
    """The path below the mount point: Starlette's Mount keeps ``scope["path"]`` whole and
    extends ``root_path``, so the prefix is stripped here."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def bearer_matches(scope: Scope, token: bytes) -> bool:
    """True if the request carries ``Authorization: Bearer <token>`` (compared in constant
    time; the scheme is case-insensitive)."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return hmac.compare_digest(credentials.strip(), token)
    return False


def plain(status: int, text: str, *extra: tuple[bytes, bytes]) -> PlainResponse:
    """A small text/plain answer, built once and sent many times."""
    body = text.encode() + b"\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        NO_STORE,
        *extra,
    ]
    return status, headers, body


async def send_response(
    scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def problem(
    status: int, title: str, detail: str, *extra: tuple[bytes, bytes], **members: Any
) -> tuple[Message, Message]:
    """An RFC 9457 ``application/problem+json`` answer, as its two ASGI messages."""
    body = json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **members}
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
    }
    return start, {"type": "http.response.body", "body": body}
