"""The endpoints controller feeding a real Envoy through its EDS file, a propagation delay late."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from gracekit.rollout.endpoints import Endpoints
from gracekit.rollout.envoy import Envoy
from gracekit.rollout.pods import Pod, PodCommand, Processes, until
from gracekit.rollout.timeline import Timeline

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

DELAY = 0.5
COMMAND = PodCommand(("server", "{port}"))


class Watcher:
    """Envoy's members, looked at every 20 ms: (monotonic time, ports)."""

    def __init__(self, envoy: Envoy) -> None:
        self.envoy = envoy
        self.seen: list[tuple[float, frozenset[int]]] = []

    async def run(self) -> None:
        while True:
            self.seen.append((time.monotonic(), frozenset(await self.envoy.members())))
            await anyio.sleep(0.02)


def pod(name: str, port: int, tmp_path: Path) -> Pod:
    return Pod(name, "v1", port, COMMAND, tmp_path / f"{name}.log")


@asynccontextmanager
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[Envoy, Watcher, TaskGroup]]:
    processes = Processes(run_id=uuid.uuid4().hex)
    envoy = Envoy(mode="l7", work_dir=tmp_path)
    try:
        await envoy.start(processes)
        watcher = Watcher(envoy)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            yield envoy, watcher, tg
            tg.cancel_scope.cancel()
    finally:
        processes.kill_all()


async def test_pods_join_and_leave_the_proxy_a_delay_late(tmp_path: Path) -> None:
    async with proxy(tmp_path) as (envoy, _watcher, tg):
        timeline = Timeline()
        endpoints = Endpoints(envoy, delay=DELAY, timeline=timeline, task_group=tg)
        a, b = pod("a", 9001, tmp_path), pod("b", 9002, tmp_path)
        ready_at = time.monotonic()
        endpoints.ready_changed(a, True)
        endpoints.ready_changed(b, True)
        with anyio.fail_after(10):
            await envoy.wait_members({9001, 9002})
        assert time.monotonic() - ready_at >= DELAY

        deleted_at = time.monotonic()
        endpoints.deleted(a)
        endpoints.ready_changed(a, True)  # a deleted pod never comes back
        with anyio.fail_after(10):
            await envoy.wait_members({9002})
        assert time.monotonic() - deleted_at >= DELAY

        unready_at = time.monotonic()
        endpoints.ready_changed(b, False)
        with anyio.fail_after(10):
            await envoy.wait_members(set())
        assert time.monotonic() - unready_at >= DELAY
        await endpoints.settled()
        assert endpoints.in_proxy == []
        kinds = [(e.pod, e.kind) for e in timeline.events]
        assert kinds == [
            ("a", "endpoint-added"),
            ("b", "endpoint-added"),
            ("a", "endpoint-removed"),
            ("b", "endpoint-removed"),
        ]


async def test_apply_now_is_not_undone_by_an_older_change(tmp_path: Path) -> None:
    async with proxy(tmp_path) as (envoy, watcher, tg):
        endpoints = Endpoints(envoy, delay=DELAY, timeline=Timeline(), task_group=tg)
        a, b = pod("a", 9001, tmp_path), pod("b", 9002, tmp_path)
        endpoints.ready_changed(a, True)  # on its way, with only a in it
        endpoints.ready_changed(b, True)
        applied_at = time.monotonic()
        await endpoints.apply_now()  # both at once, and Envoy has them when this returns
        assert await envoy.members() == {9001, 9002}
        with anyio.fail_after(10):
            await endpoints.settled()
        # The delayed views, older than the one applied now, were dropped: b never left.
        await until(lambda: bool(watcher.seen) and watcher.seen[-1][0] > applied_at + 2 * DELAY)
        assert all(ports == {9001, 9002} for t, ports in watcher.seen if t > applied_at + 0.05)
