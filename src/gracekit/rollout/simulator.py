"""The orchestration of one simulated rollout: the deployment controller's part.

1. Envoy starts with no endpoints; *replicas* pods start at the first version; once all are
   ready, the proxy gets them at once (no delay: this is the state before the rollout).
2. The load starts; after ``before`` seconds, the rollout: one new pod (maxSurge 1); when it
   is ready, one old pod is deleted (maxUnavailable 0) and the next new pod starts at once,
   since a terminating pod no longer counts; and so on until every old pod is deleted. The
   rollout ends when the last old container has exited and the proxy has caught up.
3. The load goes on for ``after`` seconds (and until ``min_requests``), then stops; every
   process is stopped by PID, whatever happened, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from .config import RolloutSettings
from .endpoints import Endpoints
from .envoy import Envoy
from .errors import RolloutError
from .kubelet import Kubelet
from .load import Load
from .pods import RUN_VARIABLE, Pod, Processes, free_port, until
from .timeline import Event, Timeline

__all__ = ["PodRun", "RunResult", "Simulation", "run_until_signal"]

_LOG_TAIL = 3000


@dataclass
class PodRun:
    """A pod of the run and its kubelet."""

    pod: Pod
    kubelet: Kubelet
    created: float


@dataclass
class RunResult:
    """Everything a report is made of."""

    settings: RolloutSettings
    timeline: Timeline
    pods: list[PodRun] = field(default_factory=list)
    load: Load | None = None
    envoy_version: str = ""
    envoy_pid: int | None = None
    rollout_started: float | None = None
    rollout_finished: float | None = None
    error: str | None = None
    run_id: str = ""
    proxy_stats: dict[str, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)


class Simulation:
    """One rollout under *settings*; *echo* receives each event as it happens."""

    def __init__(
        self, settings: RolloutSettings, *, echo: Callable[[Event], None] | None = None
    ) -> None:
        self.settings = settings
        self.timeline = Timeline(echo=echo)
        self.processes = Processes(run_id=uuid.uuid4().hex)
        self.result = RunResult(settings, self.timeline)
        self._work_dir: Path | None = None

    async def run(self) -> RunResult:
        """Run the simulation. A failure of the simulation itself (a pod never ready, Envoy
        not starting, a bound reached) is recorded in ``result.error``, not raised; every
        process started is stopped before this returns, or when it is cancelled."""
        settings = self.settings
        self.timeline.restart()
        if settings.work_dir is not None:
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            self._work_dir = settings.work_dir
        else:
            self._work_dir = Path(tempfile.mkdtemp(prefix="gracekit-rollout-"))
        self.result.run_id = self.processes.run_id
        self.timeline.add("", "run", f"{RUN_VARIABLE}={self.processes.run_id}, in {self._work_dir}")
        try:
            with anyio.move_on_after(settings.max_duration) as scope:
                async with anyio.create_task_group() as tg:
                    try:
                        await self._simulate(tg)
                    except RolloutError as exc:
                        self.result.error = str(exc)
                    tg.cancel_scope.cancel()  # the new pods' kubelets are still probing
            if scope.cancelled_caught:
                self.result.error = (
                    f"the run took longer than its bound of {settings.max_duration:g} s"
                )
        finally:
            self.stop_all()
        if self.result.error:
            self.timeline.add("", "error", self.result.error)
        return self.result

    def stop_all(self) -> None:
        """SIGKILL every process of the run that is left (idempotent), drop the work dir."""
        self.processes.kill_all()
        self.result.pids = self.processes.pids
        if self.settings.work_dir is None and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    async def _simulate(self, tg: TaskGroup) -> None:
        settings, result = self.settings, self.result
        assert self._work_dir is not None
        envoy = Envoy(mode=settings.proxy, work_dir=self._work_dir, retries=settings.retries)
        await envoy.start(self.processes)
        result.envoy_version, result.envoy_pid = envoy.server_version, envoy.pid
        self.timeline.add("", "envoy", f"pid {envoy.pid}, port {envoy.port}, {settings.proxy}")
        endpoints = Endpoints(
            envoy, delay=settings.propagation_delay, timeline=self.timeline, task_group=tg
        )
        old, new_version = settings.versions
        initial = [self._create(tg, endpoints, old, n) for n in range(settings.replicas)]
        for run in initial:
            await self._wait_ready(run)
        await endpoints.apply_now()
        load = Load(
            settings.load,
            port=envoy.port,
            timeline=self.timeline,
            max_requests=settings.max_requests,
        )
        result.load = load
        load_done = anyio.Event()

        async def run_load() -> None:
            try:
                await load.run()
            finally:
                load_done.set()

        tg.start_soon(run_load)
        self.timeline.add("", "load-started", f"{settings.load.rate:g} req/s")
        with anyio.move_on_after(settings.before):
            await load_done.wait()
        result.rollout_started = self.timeline.add("", "rollout-started").at
        for n in range(settings.replicas):
            self._check_load(load_done)
            await self._wait_ready(self._create(tg, endpoints, new_version, n))
            victim = initial[n]
            victim.kubelet.delete()
            endpoints.deleted(victim.pod)
        for run in initial:
            await run.kubelet.done.wait()
        await endpoints.settled()  # the proxy has caught up: only new pods in it
        result.rollout_finished = self.timeline.add("", "rollout-finished").at
        self._check_load(load_done)
        with anyio.move_on_after(settings.after):
            await load_done.wait()
        await until(lambda: load.sent >= settings.min_requests or load_done.is_set())
        load.stop()
        await load_done.wait()
        self.timeline.add("", "load-stopped", f"{load.sent} requests")
        with contextlib.suppress(OSError, EOFError, TimeoutError, RolloutError):
            result.proxy_stats = await envoy.stats()  # if Envoy still answers

    def _create(self, tg: TaskGroup, endpoints: Endpoints, version: str, n: int) -> PodRun:
        assert self._work_dir is not None
        name = f"{version}-{n + 1}"
        pod = Pod(
            name=name,
            version=version,
            port=free_port(),
            command=self.settings.command,
            log_path=self._work_dir / f"{name}.log",
        )
        kubelet = Kubelet(
            pod,
            self.settings.kubelet,
            processes=self.processes,
            timeline=self.timeline,
            on_ready=endpoints.ready_changed,
        )
        run = PodRun(pod, kubelet, created=self.timeline.add(name, "created").at)
        self.result.pods.append(run)
        tg.start_soon(kubelet.run)
        return run

    async def _wait_ready(self, run: PodRun) -> None:
        deadline = self.settings.progress_deadline
        with anyio.move_on_after(deadline):
            await run.kubelet.became_ready.wait()
            return
        log = run.pod.log_path.read_text(errors="replace")[-_LOG_TAIL:]
        raise RolloutError(
            f"pod {run.pod.name} was not ready within the progress deadline of {deadline:g} s "
            f"(restarts: {run.kubelet.restarts}); the end of its log:\n{log}"
        )

    def _check_load(self, load_done: anyio.Event) -> None:
        if load_done.is_set():
            raise RolloutError(
                f"the load reached its bound of {self.settings.max_requests} requests before "
                "the rollout finished: raise the bound or lower the rate"
            )


def run_until_signal(simulations: Sequence[Simulation]) -> tuple[list[RunResult], int | None]:
    """Run *simulations* one after the other, until SIGINT or SIGTERM stops them (and every
    process they started). Returns the results, and the signal that stopped them if one did.
    """
    results: list[RunResult] = []
    stopped_by: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        stopped_by.append(signum)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            for simulation in simulations:
                results.append(await simulation.run())
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        for simulation in simulations:
            simulation.stop_all()
    return results, stopped_by[0] if stopped_by else None
