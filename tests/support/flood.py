"""A flood of probes: many keep-alive connections, each sending one request after another."""

from __future__ import annotations

import asyncio


async def flood(
    port: int,
    connections: int,
    per_connection: int,
    *,
    path: str = "/health/ready",
    statuses: dict[int, int] | None = None,
) -> dict[int, int]:
    """``GET path`` on 127.0.0.1:*port*, *per_connection* times over each of *connections*
    connections at once; the statuses counted (into *statuses*, as they come, if given)."""
    counted: dict[int, int] = {} if statuses is None else statuses
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(per_connection):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                status = int(head.split(b" ", 2)[1])
                counted[status] = counted.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return counted
