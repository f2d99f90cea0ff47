"""The kubelet's part: probes, restarts, and the termination of a container.

One :class:`Kubelet` per pod starts its container, runs the startup probe until it passes, then
liveness and readiness side by side. A failed startup or liveness probe kills the container
(the same termination as a deletion) and starts it again after a back-off; so does a container
that exits on its own. Deleting the pod stops the probes and terminates the container
(preStop, SIGTERM, SIGKILL at the grace period: :mod:`.termination`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import anyio

from ..drain.timing import GRACE_PERIOD_VARIABLE
from . import http1
from .config import KubeletSettings, Probe
from .errors import BadResponse, RolloutError
from .pods import Pod, Processes, wait_exit
from .termination import Termination, terminate
from .timeline import Timeline

__all__ = ["Kubelet"]

_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 10.0


class Kubelet:
    """Runs one pod's container under *settings*; *on_ready* is told of every change of its
    readiness (the endpoints controller listens)."""

    def __init__(
        self,
        pod: Pod,
        settings: KubeletSettings,
        *,
        processes: Processes,
        timeline: Timeline,
        on_ready: Callable[[Pod, bool], None],
    ) -> None:
        self.pod = pod
        self.settings = settings
        self._processes = processes
        self._timeline = timeline
        self._on_ready = on_ready
        self._deleted = anyio.Event()
        self.done = anyio.Event()
        self.became_ready = anyio.Event()
        self.ready = False
        self.restarts = 0
        self.kills: list[Termination] = []
        self.termination: Termination | None = None

    def _event(self, kind: str, detail: str = "") -> None:
        self._timeline.add(self.pod.name, kind, detail)

    @property
    def deleted(self) -> bool:
        return self._deleted.is_set()

    def delete(self) -> None:
        """Delete the pod: its container is terminated and not started again."""
        if not self._deleted.is_set():
            self._event("deleted", "termination starts")
            self._deleted.set()

    async def run(self) -> None:
        """Run the pod until it is deleted and its container has exited."""
        try:
            while not self.deleted:
                await self._run_container()
                if self.deleted:
                    return
                self.restarts += 1
                backoff = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (self.restarts - 1))
                self._event("restarting", f"restart {self.restarts} in {backoff:g} s")
                with anyio.move_on_after(backoff):
                    await self._deleted.wait()
        finally:
            self.done.set()

    async def _run_container(self) -> None:
        """Start the container and supervise it until it exits, fails a probe (and is
        terminated) or the pod is deleted (and it is terminated)."""
        try:
            # As the manifests gracekit writes do: the app can warn when its timings do not
            # fit in the grace period.
            grace = {GRACE_PERIOD_VARIABLE: f"{self.settings.grace_period:g}"}
            process = self.pod.start(self._processes, defaults=grace)
        except RolloutError as exc:
            self.pod.note(str(exc))
            self._event("start-failed", str(exc))
            return
        self._event("started", f"pid {process.pid}, port {self.pod.port}")
        reason = await self._supervise(process)
        self._set_ready(False)
        if reason == "exited":
            self._event("container-exited", f"status {process.returncode}")
            self._processes.kill(process)  # the rest of the container goes with it
            return
        stop = await terminate(
            process,
            reason,
            pod=self.pod,
            settings=self.settings,
            processes=self._processes,
            timeline=self._timeline,
        )
        if self.deleted:
            self.termination = stop
        else:
            self.kills.append(stop)

    async def _supervise(self, process: subprocess.Popen[bytes]) -> str:
        """Probe the container until something ends this run of it; returns why."""
        reasons: list[str] = []
        async with anyio.create_task_group() as tg:

            def finish(reason: str) -> None:
                reasons.append(reason)
                tg.cancel_scope.cancel()

            async def watch_deleted() -> None:
                await self._deleted.wait()
                finish("deleted")

            async def watch_exit() -> None:
                await wait_exit(process)
                finish("exited")

            tg.start_soon(watch_deleted)
            tg.start_soon(watch_exit)
            tg.start_soon(self._probe, finish)
        return reasons[0]

    async def _probe(self, finish: Callable[[str], None]) -> None:
        startup = self.settings.startup
        if startup is not None:
            if not await self._until(startup, passing=True):
                self._event("startup-failed", f"{startup.failure_threshold} failures")
                finish("startup probe failed")
                return
            self._event("startup-passed")
        async with anyio.create_task_group() as tg:
            if self.settings.liveness is not None:

                async def liveness(probe: Probe) -> None:
                    await self._until(probe, passing=False)
                    self._event("liveness-failed", f"{probe.failure_threshold} failures")
                    finish("liveness probe failed")

                tg.start_soon(liveness, self.settings.liveness)
            if self.settings.readiness is None:
                self._set_ready(True)
            else:
                tg.start_soon(self._readiness, self.settings.readiness)

    async def _until(self, probe: Probe, *, passing: bool) -> bool:
        """Run *probe* until it passes (*passing*) or fails its threshold; True if it ended
        the way asked for (a startup probe gives up after its failure threshold)."""
        failures = 0
        outcome = False

        def judge(ok: bool) -> bool:
            nonlocal failures, outcome
            failures = 0 if ok else failures + 1
            if passing and ok:
                outcome = True
            elif failures >= probe.failure_threshold:
                outcome = not passing
            else:
                return False
            return True

        await self._every(probe, judge)
        return outcome

    async def _readiness(self, probe: Probe) -> None:
        successes = failures = 0

        def judge(ok: bool) -> bool:
            nonlocal successes, failures
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not self.ready and successes >= probe.success_threshold:
                self._set_ready(True)
            elif self.ready and failures >= probe.failure_threshold:
                self._set_ready(False)
            return False  # readiness is probed for as long as the container runs

        await self._every(probe, judge)

    async def _every(self, probe: Probe, judge: Callable[[bool], bool]) -> None:
        """Try *probe* once a period (a period after the last try started, or at once if that
        one took longer) until *judge*, given each result, returns True."""
        due = time.monotonic()
        while not judge(await self._try(probe)):
            due = max(due + probe.period, time.monotonic())
            await anyio.sleep(due - time.monotonic())

    async def _try(self, probe: Probe) -> bool:
        with anyio.move_on_after(probe.timeout):
            try:
                response = await http1.get("127.0.0.1", self.pod.port, probe.path)
            except (OSError, EOFError, BadResponse):
                return False
            return 200 <= response.status < 400
        return False

    def _set_ready(self, ready: bool) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        self._event("ready" if ready else "unready")
        if ready:
            self.became_ready.set()
        self._on_ready(self.pod, ready)
