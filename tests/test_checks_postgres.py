"""The PostgreSQL check against the real server, directly and through a fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest

from gracekit.checks import postgres_check
from gracekit.probes import CheckState, CheckStatus
from gracekit.probes._runner import run_once
from tests.support.asgi import eventually
from tests.support.faultproxy import FaultProxy
from tests.support.faults import FAULTS, probe_through_fault, proxy_to, ready_while_slow, run

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def with_application_name(dsn: str, name: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


def through(dsn: str, proxy: FaultProxy) -> str:
    """*dsn* pointed at the proxy.

    With the default sslmode=prefer, asyncpg opens its out-of-band cancel-request connection
    with an SSL negotiation; when that connection dies mid-negotiation (the proxy resets it on
    leaving "hang"), asyncpg 0.32 leaves a future with an unretrieved ConnectionError, which the
    loop reports as an error. The local server speaks no TLS, so the tests say so.
    """
    parts = urlsplit(dsn)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"{proxy.host}:{proxy.port}")
    query = f"{parts.query}&sslmode=disable" if parts.query else "sslmode=disable"
    return parts._replace(netloc=netloc, query=query).geturl()


@pytest.fixture
def proxy(postgres_dsn: str) -> Iterator[FaultProxy]:
    with proxy_to(postgres_dsn) as running:
        yield running


@pytest.fixture
async def admin(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def connections_named(admin: asyncpg.Connection, name: str) -> int:
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
    )
    return int(count)


async def test_dsn_check_passes(postgres_dsn: str) -> None:
    state = CheckState(postgres_check(dsn=postgres_dsn))
    assert await run(state) is CheckStatus.PASS
    assert state.error is None


async def test_pool_check_passes_and_returns_the_connection(postgres_dsn: str) -> None:
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2) as pool:
        state = CheckState(postgres_check(pool))
        for _ in range(20):
            assert await run(state) is CheckStatus.PASS
        assert pool.get_idle_size() == pool.get_size(), "the check must give its connection back"
        lazy = CheckState(postgres_check(lambda: pool))
        assert await run(lazy) is CheckStatus.PASS


async def test_pool_not_created_yet_fails() -> None:
    state = CheckState(postgres_check(lambda: None))
    assert await run(state) is CheckStatus.FAIL
    assert state.error == "CheckFailed: the connection pool is not created yet"


async def test_schema_version_check(postgres_dsn: str, admin: asyncpg.Connection) -> None:
    table = f"gracekit_schema_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE TABLE {table} (version text)")
    try:
        await admin.execute(f"INSERT INTO {table} VALUES ('0042_add_orders')")
        query = f"SELECT version FROM {table}"
        good = CheckState(
            postgres_check(
                dsn=postgres_dsn, schema_query=query, accepted={"0041", "0042_add_orders"}
            )
        )
        assert await run(good) is CheckStatus.PASS
        assert good.detail == {"schema": "0042_add_orders"}
        bad = CheckState(postgres_check(dsn=postgres_dsn, schema_query=query, accepted=["0043"]))
        assert await run(bad) is CheckStatus.FAIL
        assert bad.error == (
            "CheckFailed: schema version '0042_add_orders' is not one of the accepted ['0043']"
        )
    finally:
        await admin.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of pool= or dsn="),
        ({"pool": lambda: None, "dsn": "postgresql://x"}, ValueError, "exactly one"),
        ({"dsn": "postgresql://x", "schema_query": "SELECT 1"}, ValueError, "go together"),
        ({"dsn": "postgresql://x", "accepted": ["1"]}, ValueError, "go together"),
        (
            {"dsn": "postgresql://x", "schema_query": "q", "accepted": "v1"},
            ValueError,
            "not a string",
        ),
        ({"dsn": "postgresql://x", "schema_query": "q", "accepted": []}, ValueError, "non-empty"),
        ({"pool": 42}, TypeError, "asyncpg pool or a callable"),
        ({"dsn": 42}, TypeError, "dsn must be a str"),
        ({"dsn": "postgresql://x", "timeout": 0}, ValueError, "timeout of check 'postgres'"),
    ],
)
def test_configuration_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        postgres_check(**kwargs)  # type: ignore[arg-type]


async def test_thousand_runs_leak_no_connection(
    postgres_dsn: str, admin: asyncpg.Connection, proxy: FaultProxy
) -> None:
    name = f"gracekit-leak-{uuid.uuid4().hex[:8]}"
    state = CheckState(postgres_check(dsn=with_application_name(postgres_dsn, name)))
    for _ in range(1000):
        await run_once(state)
    assert state.consecutive_successes == 1000
    assert await connections_named(admin, name) == 0

    # Runs cut short by their timeout (a hanging server) must not leak either.
    hanging = CheckState(
        postgres_check(dsn=with_application_name(through(postgres_dsn, proxy), name), timeout=0.05)
    )
    proxy.hang()
    for _ in range(30):
        await run_once(hanging)
    assert hanging.consecutive_failures == 30
    proxy.delay(0.02)  # slow enough that the timeout lands mid-query, after authentication
    for _ in range(30):
        await run_once(hanging)
    proxy.pass_through()
    await eventually(lambda: proxy.active == 0, timeout=5)
    with anyio.fail_after(10):
        while await connections_named(admin, name):  # noqa: ASYNC110 - polls a real server
            await anyio.sleep(0.05)


async def test_pool_check_leaves_pool_usable_after_timeouts(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    async with asyncpg.create_pool(through(postgres_dsn, proxy), min_size=1, max_size=1) as pool:
        state = CheckState(postgres_check(pool, timeout=0.1))
        assert await run(state) is CheckStatus.PASS
        proxy.hang()
        assert await run(state) is CheckStatus.FAIL
        proxy.pass_through()
        with anyio.fail_after(5):
            while await run(state) is not CheckStatus.PASS:  # noqa: ASYNC110 - polls a real server
                await anyio.sleep(0.05)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 2") == 2


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("mode", ["dsn", "pool"])
async def test_probes_through_faults(
    postgres_dsn: str, proxy: FaultProxy, fault: str, mode: str
) -> None:
    options = {"interval": 0.4, "timeout": 0.25, "success_threshold": 2}
    if mode == "dsn":
        await probe_through_fault(
            postgres_check(dsn=through(postgres_dsn, proxy), **options), proxy, fault
        )
        return
    async with asyncpg.create_pool(through(postgres_dsn, proxy), min_size=1, max_size=2) as pool:
        await probe_through_fault(postgres_check(pool, **options), proxy, fault)


async def test_a_slow_database_does_not_fail_a_pool_check(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    # The query and the pool's reset on release take a round trip each: only the query counts.
    async with asyncpg.create_pool(through(postgres_dsn, proxy), min_size=1, max_size=2) as pool:
        try:
            await ready_while_slow(
                postgres_check(pool, timeout=1.0, interval=1.0), proxy, seconds=10
            )
        finally:
            proxy.pass_through()


async def test_a_slow_database_does_not_fail_a_dsn_check(
    postgres_dsn: str, proxy: FaultProxy
) -> None:
    check = postgres_check(dsn=through(postgres_dsn, proxy), timeout=1.0, interval=1.0)
    await ready_while_slow(check, proxy, seconds=4)
