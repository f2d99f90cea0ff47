"""The simulated kubelet on real processes: the grace period, preStop hooks, probe failures."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from gracekit.rollout.config import KubeletSettings, PreStop, Probe
from gracekit.rollout.demo import DEMO_APP
from gracekit.rollout.kubelet import Kubelet
from gracekit.rollout.pods import Pod, PodCommand, Processes, free_port, until
from gracekit.rollout.termination import Termination
from gracekit.rollout.timeline import Timeline
from tests.support.server import TEST_APPS

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SLACK = 1.5  # seconds of slack on every upper bound, for a noisy shared machine
TARGET = PodCommand((sys.executable, str(TEST_APPS / "pod_target.py"), "{port}"))
FAST = KubeletSettings(
    startup=Probe("/health/startup", period=0.1, failure_threshold=50),
    liveness=Probe("/health/live", period=0.2, failure_threshold=2),
    readiness=Probe("/health/ready", period=0.2, failure_threshold=2),
)


@dataclass
class Run:
    kubelet: Kubelet
    timeline: Timeline
    readiness: list[bool] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.timeline.events]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@asynccontextmanager
async def kubelet(
    tmp_path: Path,
    settings: KubeletSettings,
    *,
    env: Mapping[str, str] | None = None,
    command: PodCommand = TARGET,
    ready: bool = True,
) -> AsyncIterator[Run]:
    """A pod of *command* under a kubelet, ready when the block starts (if *ready*)."""
    processes = Processes(run_id=uuid.uuid4().hex)
    timeline = Timeline()
    pod = Pod(
        name="p-1",
        version="v1",
        port=free_port(),
        command=PodCommand(command.argv, {**command.env, **(env or {})}),
        log_path=tmp_path / "pod.log",
    )
    run = Run(
        Kubelet(
            pod,
            settings,
            processes=processes,
            timeline=timeline,
            on_ready=lambda pod, ready: run.readiness.append(ready),
        ),
        timeline,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.kubelet.run)
            if ready:
                with anyio.fail_after(20):
                    await run.kubelet.became_ready.wait()
            yield run
            tg.cancel_scope.cancel()
    finally:
        processes.kill_all()


async def delete(run: Run) -> None:
    run.kubelet.delete()
    with anyio.fail_after(20):
        await run.kubelet.done.wait()


async def terminated(tmp_path: Path, settings: KubeletSettings, **options: Any) -> Termination:
    """Start a pod, delete it once ready; how its container was stopped."""
    async with kubelet(tmp_path, settings, **options) as run:
        await delete(run)
    assert run.kubelet.termination is not None
    return run.kubelet.termination


async def test_sigkill_at_the_grace_period_when_sigterm_is_ignored(tmp_path: Path) -> None:
    settings = KubeletSettings(startup=FAST.startup, readiness=FAST.readiness, grace_period=1.5)
    async with kubelet(tmp_path, settings, env={"IGNORE_SIGTERM": "1"}) as run:
        pid = run.kubelet.pod.pids[-1]
        await delete(run)
    stop = run.kubelet.termination
    assert stop is not None
    assert stop.sigterm is not None
    assert stop.sigkill is not None
    assert stop.killed
    assert stop.sigterm - stop.started < 0.5  # no preStop: SIGTERM at once
    assert 1.4 <= stop.sigkill - stop.started <= 1.5 + SLACK
    assert stop.exit_code == -9
    assert gone(pid)
    assert run.readiness == [True, False]


async def test_a_process_that_exits_on_sigterm_is_not_killed(tmp_path: Path) -> None:
    stop = await terminated(tmp_path, KubeletSettings(startup=FAST.startup, grace_period=5))
    assert not stop.killed
    assert stop.exit_code == 0
    assert (stop.sigterm_to_exit or 0) < 1.0 + SLACK


async def test_prestop_time_counts_in_the_grace_period(tmp_path: Path) -> None:
    settings = KubeletSettings(
        startup=FAST.startup, prestop=PreStop("sleep", seconds=2.0), grace_period=3.0
    )
    async with kubelet(tmp_path, settings, env={"IGNORE_SIGTERM": "1"}) as run:
        await delete(run)
    stop = run.kubelet.termination
    assert stop is not None
    assert stop.sigterm is not None
    assert stop.sigkill is not None
    assert "prestop-done" in run.kinds()
    assert 1.95 <= stop.sigterm - stop.started <= 2.0 + SLACK
    # SIGKILL comes at the grace period counted from the start of the preStop hook, not from
    # SIGTERM: the process had 1 s after SIGTERM, not 3.
    assert 2.9 <= stop.sigkill - stop.started <= 3.0 + SLACK
    assert 0.9 <= (stop.sigterm_to_exit or 0) < 2.0


async def test_a_prestop_hook_longer_than_the_grace_period_gets_2_s_more(tmp_path: Path) -> None:
    settings = KubeletSettings(
        startup=FAST.startup, prestop=PreStop("sleep", seconds=10.0), grace_period=1.0
    )
    stop = await terminated(tmp_path, settings, env={"IGNORE_SIGTERM": "1"})
    assert stop.sigterm is not None
    assert stop.sigkill is not None
    assert 0.95 <= stop.sigterm - stop.started <= 1.0 + SLACK  # the hook was cut short
    assert 1.9 <= stop.sigkill - stop.sigterm <= 2.0 + SLACK


async def test_http_prestop_spends_gracekits_delay_before_sigterm(tmp_path: Path) -> None:
    token = "kubelet-test-token"
    env = {"GRACEKIT_SHUTDOWN_DELAY": "1", "WARMUP_SECONDS": "0", "DEMO_PRESTOP_TOKEN": token}
    command = PodCommand.for_app(DEMO_APP, factory=True, env=env)
    settings = KubeletSettings(
        startup=FAST.startup,
        readiness=FAST.readiness,
        prestop=PreStop(
            "http", path="/health/prestop", headers=(("Authorization", f"Bearer {token}"),)
        ),
        grace_period=10.0,
    )
    async with kubelet(tmp_path, settings, command=command) as run:
        await delete(run)
    stop = run.kubelet.termination
    assert stop is not None
    assert stop.prestop_done is not None
    # /health/prestop answers once gracekit's 1 s delay is over; the SIGTERM after it finds
    # the shutdown under way and adds no second delay.
    assert 0.9 <= stop.prestop_done - stop.started <= 1.0 + SLACK
    assert (stop.sigterm_to_exit or 0) < 0.9 + SLACK
    assert not stop.killed
    assert stop.exit_code == 0
    assert any(e.kind == "prestop-answered" and "200" in e.detail for e in run.timeline.events)


async def test_a_liveness_failure_restarts_the_container(tmp_path: Path) -> None:
    env = {"FAIL_LIVENESS_ONCE": str(tmp_path)}
    async with kubelet(tmp_path, FAST, env=env) as run:
        with anyio.fail_after(20):
            await until(lambda: run.kubelet.restarts >= 1 and run.kubelet.ready)
        first, second = run.kubelet.pod.pids
        assert gone(first)
        assert not gone(second)
        await delete(run)
    assert run.kubelet.restarts == 1
    assert len(run.kubelet.kills) == 1
    assert "liveness" in run.kubelet.kills[0].reason
    assert run.kubelet.kills[0].sigterm is not None  # a liveness kill is a normal termination
    kinds = run.kinds()
    assert kinds.index("liveness-failed") < kinds.index("restarting")
    assert kinds.count("started") == 2
    # Out of the endpoints while it restarted, back in once ready again.
    assert run.readiness == [True, False, True, False]


async def test_a_startup_probe_that_never_passes_restarts_the_container(tmp_path: Path) -> None:
    settings = KubeletSettings(startup=Probe("/health/startup", period=0.1, failure_threshold=3))
    async with kubelet(tmp_path, settings, env={"NEVER_STARTS": "1"}, ready=False) as run:
        with anyio.fail_after(20):
            await until(lambda: run.kubelet.restarts >= 2)
        await delete(run)
    assert not run.kubelet.became_ready.is_set()
    assert all("startup" in kill.reason for kill in run.kubelet.kills)
    assert run.kinds().count("startup-failed") >= 2
    assert all(gone(pid) for pid in run.kubelet.pod.pids)
