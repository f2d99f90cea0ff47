"""A test app whose readiness depends on PostgreSQL and Redis, reached at addresses the test
passes in the environment (through fault proxies)."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import Lifecycle, ProbeApp
from gracekit.checks import postgres_check, redis_check


def create_app(environ: dict[str, str]) -> Starlette:
    lifecycle = Lifecycle()
    timing = {"interval": 0.4, "timeout": 0.25, "success_threshold": 2}
    lifecycle.add_check(postgres_check(dsn=environ["TEST_POSTGRES_DSN"], **timing))
    lifecycle.add_check(redis_check(url=environ["TEST_REDIS_URL"], **timing))

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(
        routes=[Route("/", home), Mount("/health", app=ProbeApp(lifecycle, details="always"))],
        lifespan=lifecycle.lifespan(),
    )


app = create_app(dict(os.environ))
