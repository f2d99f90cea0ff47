"""Redis check through redis.asyncio: PING, and optionally "this key exists"."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import CheckFailed
from ..probes.check import Check
from ._common import close_bounded, housekeeping, measured, with_housekeeping

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["redis_check"]


def redis_check(
    client: Redis | Callable[[], Redis | None] | None = None,
    *,
    url: str | None = None,
    name: str = "redis",
    key: str | None = None,
    **options: Any,
) -> Check:
    """A check that PINGs Redis.

    Parameters:
        client: a ``redis.asyncio.Redis`` client the application already has, or a function
            returning it (or None while it is not created yet, which fails the check).
        url: instead of a client, a ``redis://`` URL: each run opens its own connection and
            closes it. *timeout* then bounds the PING (and the key's lookup); connecting is
            bounded apart (``housekeeping_timeout``, default three times *timeout*).
        name: the check's name.
        key: a key that must exist for the check to pass (a warmed cache, say).
        options: the other settings of :class:`~gracekit.Check`. For a cache that can fail
            without taking the pod out of rotation, pass ``probes="informational"``.

    The password of *url*, or the client's, is masked in the check's error texts, with the
    pieces of it a parse error may repeat.

    Raises:
        ImportError: redis is not installed (``pip install 'gracekit[redis]'``).
        ValueError: neither or both of *client* and *url*.
    """
    driver = require("redis.asyncio", extra="redis", feature="gracekit.checks.redis")
    if (client is None) == (url is None):
        raise ValueError("redis_check() needs exactly one of client= or url=")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"key must be a non-empty str, got {key!r}")

    async def probe(redis: Redis) -> dict[str, object] | None:
        await redis.ping()
        if key is None:
            return None
        if not await redis.exists(key):
            raise CheckFailed(f"key {key!r} does not exist")
        return {"key": key}

    if client is not None:
        if not isinstance(client, driver.Redis) and not callable(client):
            raise TypeError(
                f"client must be a redis.asyncio.Redis or a callable, not {type(client).__name__}"
            )
        source = client
        known: list[object] = []  # the client whose password the check has learnt

        async def run() -> dict[str, object] | None:
            current = source if isinstance(source, driver.Redis) else source()
            if current is None:
                raise CheckFailed("the Redis client is not created yet")
            if not any(seen is current for seen in known):
                settings = current.connection_pool.connection_kwargs
                check.secrets.add(settings.get("password"))
                known[:] = [current]
            return await probe(current)

    else:

        async def run() -> dict[str, object] | None:
            redis: Redis = driver.Redis.from_url(url, single_connection_client=True)
            try:
                # Connecting and the handshake (HELLO, CLIENT SETINFO) are housekeeping: a few
                # round trips, timed apart from the PING.
                with housekeeping(check, "connecting"):
                    await redis.initialize()
                with measured(check):
                    return await probe(redis)
            finally:
                await close_bounded(redis.aclose)

        options = with_housekeeping(options)

    check = Check(name, run, **options)
    check.secrets.add(url)
    return check
