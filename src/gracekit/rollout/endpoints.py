"""The endpoints controller, and the proxy that learns of its changes late.

The controller's view changes at once: a pod is in it while it is ready and not deleted. The
proxy gets each new view *delay* seconds later, in order, as kube-proxy, an ingress or a mesh
sidecar learns of an EndpointSlice change: a pod joins the proxy *delay* s after it became
ready, and a deleted pod leaves it *delay* s after its termination started, while its
container is already being stopped. That window is the race that loses requests.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup

from .envoy import Envoy
from .errors import RolloutError
from .pods import Pod
from .timeline import Timeline

__all__ = ["Endpoints"]

_CONFIRM_TIMEOUT = 5.0


class Endpoints:
    """Which pods the proxy sends traffic to, *delay* seconds behind the controller.

    Parameters:
        envoy: the proxy whose EDS file is rewritten.
        delay: the propagation delay, in seconds.
        task_group: where the delayed updates wait.
    """

    def __init__(
        self, envoy: Envoy, *, delay: float, timeline: Timeline, task_group: TaskGroup
    ) -> None:
        self._envoy = envoy
        self.delay = delay
        self._timeline = timeline
        self._tg = task_group
        self._serving: dict[str, int] = {}  # the controller's view: name -> port
        self._deleted: set[str] = set()
        self._in_proxy: dict[str, int] = {}
        self._published = 0
        self._applied = 0
        self._caught_up = anyio.Event()
        self._caught_up.set()

    def ready_changed(self, pod: Pod, ready: bool) -> None:
        """The kubelet saw *pod*'s readiness change."""
        if pod.name in self._deleted:
            return  # a terminating pod has left the endpoints for good
        if ready:
            self._serving[pod.name] = pod.port
        elif self._serving.pop(pod.name, None) is None:
            return
        self._publish()

    def deleted(self, pod: Pod) -> None:
        """*pod* was deleted: it leaves the endpoints now, and the proxy *delay* s later."""
        self._deleted.add(pod.name)
        if self._serving.pop(pod.name, None) is not None:
            self._publish()

    def _publish(self) -> None:
        self._published += 1
        if self._caught_up.is_set():
            self._caught_up = anyio.Event()
        self._tg.start_soon(self._apply_later, self._published, dict(self._serving))

    async def _apply_later(self, number: int, view: dict[str, int]) -> None:
        await anyio.sleep(self.delay)
        self._apply(number, view)

    def _apply(self, number: int, view: dict[str, int]) -> None:
        if number <= self._applied:
            return  # a later view was applied already (see apply_now)
        self._applied = number
        for name in sorted(view.keys() - self._in_proxy.keys()):
            self._timeline.add(name, "endpoint-added", "the proxy sends it traffic")
        for name in sorted(self._in_proxy.keys() - view.keys()):
            self._timeline.add(name, "endpoint-removed", "the proxy stops sending it traffic")
        self._in_proxy = view
        self._envoy.set_endpoints(view.values())
        if self._applied == self._published:
            self._caught_up.set()

    async def apply_now(self) -> None:
        """Give the proxy the controller's current view without the delay (the initial
        deployment, before the load starts), and wait until Envoy uses it."""
        self._publish()
        self._apply(self._published, dict(self._serving))
        wanted = set(self._in_proxy.values())
        with anyio.move_on_after(_CONFIRM_TIMEOUT):
            await self._envoy.wait_members(wanted)
            return
        members = await self._envoy.members()
        raise RolloutError(f"Envoy has the endpoints {sorted(members)}, not {sorted(wanted)}")

    async def settled(self) -> None:
        """Return once the proxy has every change published so far."""
        await self._caught_up.wait()

    @property
    def in_proxy(self) -> list[str]:
        """The names of the pods the proxy sends traffic to now."""
        return sorted(self._in_proxy)
