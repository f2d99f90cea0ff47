"""The Redis check against the real server, directly and through a fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from gracekit.checks import redis_check
from gracekit.probes import CheckState, CheckStatus
from gracekit.probes._runner import run_once
from tests.support.asgi import eventually
from tests.support.faultproxy import FaultProxy
from tests.support.faults import FAULTS, probe_through_fault, proxy_to, ready_while_slow, run

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    with proxy_to(redis_url) as running:
        yield running


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def through(proxy: FaultProxy) -> str:
    return f"redis://{proxy.host}:{proxy.port}/0"


async def test_url_check_passes(redis_url: str) -> None:
    state = CheckState(redis_check(url=redis_url))
    assert await run(state) is CheckStatus.PASS


async def test_client_check_passes(redis: aioredis.Redis) -> None:
    state = CheckState(redis_check(redis))
    assert await run(state) is CheckStatus.PASS
    holder: dict[str, aioredis.Redis] = {}
    lazy = CheckState(redis_check(lambda: holder.get("client")))
    assert await run(lazy) is CheckStatus.FAIL
    assert lazy.error == "CheckFailed: the Redis client is not created yet"
    holder["client"] = redis
    assert await run(lazy) is CheckStatus.PASS


async def test_key_condition(redis: aioredis.Redis, redis_url: str) -> None:
    key = f"gracekit:test:warm:{uuid.uuid4().hex}"
    state = CheckState(redis_check(url=redis_url, key=key))
    assert await run(state) is CheckStatus.FAIL
    assert state.error == f"CheckFailed: key {key!r} does not exist"
    await redis.set(key, "1", ex=60)
    try:
        assert await run(state) is CheckStatus.PASS
        assert state.detail == {"key": key}
    finally:
        await redis.delete(key)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of client= or url="),
        ({"url": 3}, TypeError, "url must be a str"),
        ({"client": "redis://x"}, TypeError, "client must be a redis.asyncio.Redis"),
        ({"url": "redis://x", "key": ""}, ValueError, "key must be a non-empty str"),
        ({"url": "redis://x", "interval": 0.1}, ValueError, "shorter than its timeout"),
    ],
)
def test_configuration_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        redis_check(**kwargs)  # type: ignore[arg-type]


async def test_runs_leak_no_connection(redis: aioredis.Redis, proxy: FaultProxy) -> None:
    async def clients() -> int:
        return len(await redis.client_list())

    before = await clients()
    state = CheckState(redis_check(url=through(proxy), timeout=0.2, interval=1))
    for _ in range(300):
        await run_once(state)
    assert state.consecutive_successes == 300
    proxy.hang()
    for _ in range(10):
        await run_once(state)
    assert state.consecutive_failures == 10
    proxy.pass_through()
    await eventually(lambda: proxy.active == 0, timeout=5)
    assert await clients() <= before, "the check left connections open on the server"


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("mode", ["url", "client"])
async def test_probes_through_faults(proxy: FaultProxy, fault: str, mode: str) -> None:
    options = {"interval": 0.4, "timeout": 0.25, "success_threshold": 2}
    if mode == "url":
        await probe_through_fault(redis_check(url=through(proxy), **options), proxy, fault)
        return
    client = aioredis.Redis.from_url(through(proxy), socket_connect_timeout=0.25)
    try:
        await probe_through_fault(redis_check(client, **options), proxy, fault)
    finally:
        await client.aclose()


async def test_a_slow_server_does_not_fail_a_url_check(proxy: FaultProxy) -> None:
    # Each run connects and shakes hands (several round trips) before its PING: only the PING
    # counts.
    check = redis_check(url=through(proxy), timeout=1.0, interval=1.0)
    await ready_while_slow(check, proxy, seconds=4)


async def test_a_slow_server_does_not_fail_a_client_check(proxy: FaultProxy) -> None:
    client = aioredis.Redis.from_url(through(proxy))
    try:
        await ready_while_slow(redis_check(client, timeout=1.0, interval=1.0), proxy, seconds=4)
    finally:
        await client.aclose()
