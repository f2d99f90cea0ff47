"""PostgreSQL check through asyncpg: ``SELECT 1``, and optionally a schema-version check."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import anyio

from .._optional import require
from ..errors import CheckFailed
from ..probes.check import Check
from ._common import housekeeping, measured, with_housekeeping

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

#: How long before the run's bound giving a connection back must end.
_RELEASE_MARGIN = 0.1

__all__ = ["postgres_check"]


def postgres_check(
    pool: asyncpg.Pool[Any] | Callable[[], asyncpg.Pool[Any] | None] | None = None,
    *,
    dsn: str | None = None,
    name: str = "postgres",
    schema_query: str | None = None,
    accepted: Collection[object] | None = None,
    **options: Any,
) -> Check:
    """A check that runs a query on PostgreSQL.

    Parameters:
        pool: an asyncpg pool, or a function returning one (or None while the pool is not
            created yet, which fails the check), e.g.
            ``lambda: getattr(app.state, "pool", None)``. The check borrows one connection per
            run and gives it back.
        dsn: instead of a pool, a connection string: each run opens its own connection and
            closes it, so the check never holds a connection between runs.
        name: the check's name.
        schema_query: a query returning one value, e.g. the migration version
            (``SELECT version_num FROM alembic_version``); the check fails unless the value is
            in *accepted*. This keeps a release from serving on a schema it cannot read.
        accepted: the values (compared as strings) *schema_query* may return.
        options: the other settings of :class:`~gracekit.Check` (timeout, interval, probes...).

    *timeout* bounds the query's round trip; taking a connection from the pool (or opening
    one) and giving it back (or closing it) is housekeeping, bounded separately
    (``housekeeping_timeout``, default three times *timeout*), so a slow database fails the
    check only when the query itself is slower than *timeout*.

    The password of *dsn*, or of the DSN the pool connects with, is masked in the check's
    error texts, with the pieces of it a parse error may repeat.

    Raises:
        ImportError: asyncpg is not installed (``pip install 'gracekit[postgres]'``).
        ValueError: neither or both of *pool* and *dsn*, or a schema query without accepted
            values (or the reverse).
    """
    driver = require("asyncpg", extra="postgres", feature="gracekit.checks.postgres")
    if (pool is None) == (dsn is None):
        raise ValueError("postgres_check() needs exactly one of pool= or dsn=")
    if dsn is not None and not isinstance(dsn, str):
        raise TypeError(f"dsn must be a str, not {type(dsn).__name__}")
    if (schema_query is None) != (accepted is None):
        raise ValueError("schema_query and accepted go together: give both or neither")
    allowed = None
    if accepted is not None:
        if isinstance(accepted, (str, bytes)) or not accepted:
            raise ValueError("accepted must be a non-empty collection of values, not a string")
        allowed = frozenset(str(value) for value in accepted)
    query = schema_query or "SELECT 1"
    if pool is not None and not isinstance(pool, driver.Pool) and not callable(pool):
        raise TypeError(f"pool must be an asyncpg pool or a callable, not {type(pool).__name__}")

    def verify(value: object) -> dict[str, object] | None:
        if allowed is None:
            return None
        if str(value) not in allowed:
            raise CheckFailed(
                f"schema version {value!r} is not one of the accepted {sorted(allowed)}"
            )
        return {"schema": str(value)}

    async def round_trip(conn: Connection) -> object:
        """The query the check measures; a connection that failed it is closed at once
        (a polite release or close could hang on it), and the pool replaces it."""
        try:
            with measured(check):
                if allowed is None:
                    # The simple protocol: one round trip, where fetchval would prepare the
                    # statement first on each new connection (two).
                    return await conn.execute(query)
                return await conn.fetchval(query)
        except BaseException:
            conn.terminate()
            raise

    known: list[object] = []  # the pool whose secrets the check has learnt

    async def through_pool() -> dict[str, object] | None:
        current = pool if isinstance(pool, driver.Pool) else pool() if pool else None
        if current is None:
            raise CheckFailed("the connection pool is not created yet")
        if not any(seen is current for seen in known):
            check.secrets.add(*pool_secrets(current))
            known[:] = [current]
        with housekeeping(check, "taking a connection from the pool"):
            conn = await current.acquire()
        try:
            value = await round_trip(conn)
        finally:
            await give_back(current, conn)
        return verify(value)

    async def through_dsn() -> dict[str, object] | None:
        with housekeeping(check, "connecting"):
            conn = await driver.connect(dsn)
        value = await round_trip(conn)
        try:
            await conn.close()
        except BaseException:
            conn.terminate()  # closes the socket at once; a polite close could hang here
            raise
        return verify(value)

    options = with_housekeeping(options)
    check = Check(name, through_pool if pool is not None else through_dsn, **options)
    check.secrets.add(dsn)
    return check


async def give_back(pool: asyncpg.Pool[Any], conn: PoolConnectionProxy[Any]) -> None:
    """Release *conn* to *pool*: its reset query is housekeeping, bounded by what is left of
    the run rather than by the check's timeout. ``Pool.release`` shields the reset from
    cancellation, so it gets a timeout of its own that ends it inside the run's bound."""
    left = anyio.current_effective_deadline() - anyio.current_time()
    bound = max(0.0, left - min(_RELEASE_MARGIN, left / 10))
    try:
        await pool.release(conn, timeout=bound)
    except TimeoutError:
        # asyncpg closed the connection; the pool replaces it.
        raise TimeoutError(
            f"giving the connection back to the pool took longer than {bound:.3g} s"
        ) from None


def pool_secrets(pool: object) -> list[str]:
    """The DSN and password an asyncpg pool connects with.

    asyncpg keeps them in ``Pool._connect_args`` and ``Pool._connect_kwargs``, with no public
    way to read them; ``tests/test_redaction.py`` fails if they move.
    """
    args = getattr(pool, "_connect_args", None) or ()
    kwargs = getattr(pool, "_connect_kwargs", None) or {}
    candidates = [*args[:1], kwargs.get("dsn"), kwargs.get("password")]
    return [value for value in candidates if isinstance(value, str)]
