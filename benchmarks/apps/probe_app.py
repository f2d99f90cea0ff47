"""The application that ``benchmarks/probe_bench.py`` loads: probes next to a bare route.

Run it with (``--factory``: the environment is read when uvicorn builds the app, not at import)::

    GRACEKIT_BENCH_POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/test \\
        uvicorn probe_app:create_app --factory --app-dir benchmarks/apps

Routes:
  GET /bare            -> "ok" from a plain Starlette route: the baseline
  GET /health/ready    -> gracekit's readiness probe over three checks and one gate
  GET /health/...      -> the other probes of :class:`gracekit.ProbeApp`

The PostgreSQL check's DSN comes from ``GRACEKIT_BENCH_POSTGRES_DSN``: the benchmark points it at
the real server (healthy) or at a listener that accepts connections and never answers (hanging).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import anyio.lowlevel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import Lifecycle, ProbeApp
from gracekit.checks import postgres_check, tcp_check

DSN_VARIABLE = "GRACEKIT_BENCH_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

# Short enough that a hanging dependency is being waited on for half of every second of a run.
CHECK_INTERVAL = 1.0
CHECK_TIMEOUT = 0.5


async def bare(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def build_app(*, dsn: str, tcp_host: str = "127.0.0.1", tcp_port: int = 5432) -> Starlette:
    """The benchmark app: readiness gated by a PostgreSQL check on *dsn*, a TCP check on
    *tcp_host*:*tcp_port*, a dependency-free check, and a gate a startup task opens."""
    lifecycle = Lifecycle()
    lifecycle.add_check(postgres_check(dsn=dsn, interval=CHECK_INTERVAL, timeout=CHECK_TIMEOUT))
    lifecycle.add_check(
        tcp_check(tcp_host, tcp_port, interval=CHECK_INTERVAL, timeout=CHECK_TIMEOUT)
    )

    @lifecycle.check(interval=CHECK_INTERVAL, timeout=CHECK_TIMEOUT)
    async def scheduler() -> dict[str, object]:
        # Stands in for an in-process dependency: it only needs the event loop to turn.
        await anyio.lowlevel.checkpoint()
        return {"loop": "turning"}

    warm = lifecycle.gate("warm")

    @lifecycle.startup_task(timeout=5.0)
    async def warm_up() -> None:
        warm.open()

    return Starlette(
        routes=[Route("/bare", bare), Mount("/health", app=ProbeApp(lifecycle))],
        lifespan=lifecycle.lifespan(),
    )


def create_app(environ: Mapping[str, str] = os.environ) -> Starlette:
    """uvicorn's ``--factory`` entry point: the one place the environment is read."""
    return build_app(dsn=environ.get(DSN_VARIABLE, DEFAULT_DSN))
