"""Request deadlines: each request's time budget, from its route and its caller, enforced by
:class:`~gracekit.DrainMiddleware` and passed on to what the request calls.

- :func:`deadline` gives an endpoint its own deadline; ``DrainMiddleware(deadline=...,
  route_deadlines=...)`` sets the default and deadlines by route template.
- :func:`current`, :func:`remaining`, :func:`timeout` and :func:`deadline_at` read the budget
  anywhere inside the request; :mod:`gracekit.deadlines.http`,
  :mod:`~gracekit.deadlines.postgres` and :mod:`~gracekit.deadlines.redis` pass it on to httpx,
  asyncpg and redis.
- :func:`inbound_budget` reads the budget a caller sends (Envoy, gRPC and gracekit headers).
"""

from __future__ import annotations

from ..errors import DeadlineExceeded as DeadlineExceeded
from ._budget import RequestDeadline as RequestDeadline
from ._context import current as current
from ._context import deadline_at as deadline_at
from ._context import remaining as remaining
from ._context import timeout as timeout
from ._headers import BUDGET_HEADERS as BUDGET_HEADERS
from ._headers import inbound_budget as inbound_budget
from ._routes import RouteInfo as RouteInfo
from ._routes import deadline as deadline

__all__ = [
    "BUDGET_HEADERS",
    "DeadlineExceeded",
    "RequestDeadline",
    "RouteInfo",
    "current",
    "deadline",
    "deadline_at",
    "inbound_budget",
    "remaining",
    "timeout",
]
