"""Passing the budget on to Redis commands made with redis-py's asyncio client.

redis-py has a socket timeout per connection, not per command. :class:`DeadlineConnection`
reads it at each use: inside a request with a deadline it is the remaining budget (capped by the
configured ``socket_timeout``), elsewhere the configured one. A command that would outlive the
request fails with ``redis.exceptions.TimeoutError`` (and redis-py drops the connection, as it
does after any timeout, so no late reply is read by the next command)::

    from gracekit.deadlines.redis import from_url

    redis = from_url("redis://cache:6379/0", socket_timeout=5)

:func:`from_url` picks :class:`DeadlineConnection` or :class:`DeadlineSSLConnection` from the
URL's scheme (``Redis.from_url(url, connection_class=...)`` would not: redis-py lets the
scheme's class win over the argument).
"""

from __future__ import annotations

from typing import Any

from .._optional import require
from ._context import current

require("redis.asyncio", extra="redis", feature="gracekit.deadlines.redis")

from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.connection import (  # noqa: E402
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)

__all__ = ["DeadlineConnection", "DeadlineSSLConnection", "from_url"]

#: A spent budget still needs a positive timeout: a zero one means "no timeout" to redis-py.
_SPENT = 0.001


class _DeadlineTimeout:
    """``socket_timeout`` as the smaller of the configured one and the remaining budget."""

    _configured_socket_timeout: float | None = None

    @property
    def socket_timeout(self) -> float | None:
        configured = self._configured_socket_timeout
        deadline = current()
        left = None if deadline is None else deadline.remaining()
        if left is None:
            return configured
        left = max(left, _SPENT)
        return left if configured is None else min(configured, left)

    @socket_timeout.setter
    def socket_timeout(self, value: float | None) -> None:
        self._configured_socket_timeout = value


class DeadlineConnection(_DeadlineTimeout, Connection):
    """A redis-py asyncio ``Connection`` whose socket timeout follows the request's budget."""


class DeadlineSSLConnection(_DeadlineTimeout, SSLConnection):
    """The TLS variant of :class:`DeadlineConnection`."""


def from_url(url: str, **options: Any) -> Redis:
    """A redis-py asyncio client for a ``redis://`` or ``rediss://`` *url* whose connections
    follow the request's budget; *options* are the pool's (``socket_timeout=5``...).

    Raises:
        ValueError: a ``unix://`` URL (those connections have no deadline variant).
    """
    settings: dict[str, Any] = dict(parse_url(url))
    scheme_class = settings.pop("connection_class", None)
    if scheme_class is UnixDomainSocketConnection:
        raise ValueError(f"gracekit.deadlines.redis does not support unix:// URLs: {url!r}")
    connection_class = (
        DeadlineSSLConnection if scheme_class is SSLConnection else DeadlineConnection
    )
    pool = ConnectionPool(connection_class=connection_class, **{**settings, **options})
    return Redis(connection_pool=pool)
