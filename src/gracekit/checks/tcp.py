"""TCP dependency check: connect, then close."""

from __future__ import annotations

from typing import Any

import anyio

from .. import _validate
from ..probes.check import Check

__all__ = ["tcp_check"]


def tcp_check(host: str, port: int, *, name: str | None = None, **options: Any) -> Check:
    """A check that passes when a TCP connection to *host*:*port* can be opened.

    Parameters:
        host: host name or address.
        port: TCP port.
        name: the check's name; default ``"tcp-HOST-PORT"``.
        options: the other settings of :class:`~gracekit.Check` (timeout, interval, probes...).
    """
    if not isinstance(host, str) or not host:
        raise ValueError(f"tcp_check() needs a host name, got {host!r}")
    port = _validate.port(port, what="tcp_check() port")
    check_name = _validate.name(name or f"tcp-{host}-{port}", what="check name")

    async def connect() -> dict[str, object]:
        stream = await anyio.connect_tcp(host, port)
        await stream.aclose()
        return {"address": f"{host}:{port}"}

    return Check(check_name, connect, **options)
