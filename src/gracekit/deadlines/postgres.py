"""Passing the budget on to PostgreSQL queries made with asyncpg.

Two ways, which combine:

- per call, ``await conn.fetch(query, timeout=gracekit.deadlines.timeout())``: asyncpg stops
  waiting when the budget is spent and asks the server to cancel the query;
- per transaction, :func:`statement_timeout`: ``SET LOCAL statement_timeout`` to what is left, so
  the server itself cancels a statement that would outlive the request, even if the client is
  gone or stuck.

When the deadline cancels a request in the middle of a query, asyncpg also asks the server to
cancel it, and the connection goes back to its pool in a usable state. asyncpg is not imported
here: the function only uses the connection it is given.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import DeadlineExceeded, GracekitError
from ._context import current

__all__ = ["statement_timeout"]


async def statement_timeout(connection: Any) -> int | None:
    """Set ``statement_timeout`` for the rest of the current transaction to the remaining
    budget (whole milliseconds, rounded up); returns it, or None when there is no deadline
    (nothing is changed then).

    Call it first thing inside ``async with connection.transaction():``; it ends with the
    transaction, so pooled connections do not keep it.

    Raises:
        GracekitError: *connection* is not in a transaction (outside one, the setting would
            vanish with the statement that sets it).
        DeadlineExceeded: the budget is spent.
    """
    deadline = current()
    left = None if deadline is None else deadline.remaining()
    if left is None:
        return None
    if not connection.is_in_transaction():
        raise GracekitError(
            "statement_timeout() needs a transaction: call it inside "
            "`async with connection.transaction():`"
        )
    if left <= 0:
        raise DeadlineExceeded("no budget left for a PostgreSQL statement")
    milliseconds = max(1, math.ceil(left * 1000))
    # set_config(..., is_local => true) is SET LOCAL with a bind parameter.
    await connection.execute("SELECT set_config('statement_timeout', $1, true)", str(milliseconds))
    return milliseconds
