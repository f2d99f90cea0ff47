"""What a gracekit app is, as the Kubernetes side needs to know it.

:func:`load_app` imports ``MODULE:APP`` the way ``gracekit run`` does; :func:`inspect_app` finds
the app's :class:`~gracekit.Lifecycle` (through ``DrainMiddleware`` or the mounted
:class:`~gracekit.ProbeApp`) and reads its timings, hooks, checks, startup work, its management
port and the probe app's mount path into an :class:`AppInfo`, a plain value the manifest and the
doctor compute on.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..drain.middleware import DrainMiddleware
from ..drain.timing import ShutdownTiming
from ..lifecycle import DEFAULT_LOOP_LAG_THRESHOLD, Lifecycle
from ..probes._runner import describe_error
from ..probes.endpoints import ProbeApp
from ..server.management import MANAGEMENT_PORT_VARIABLE, Management
from .errors import AppLoadError

__all__ = ["MANAGEMENT_HEALTH_PATH", "AppInfo", "CheckInfo", "inspect_app", "load_app"]

DEFAULT_HEALTH_PATH = "/health"
#: Where the management port serves the probes and the preStop hook, whatever the app mounts.
MANAGEMENT_HEALTH_PATH = "/health"
_MAX_DEPTH = 32  # middleware stacks and nested mounts are far shallower than this


@dataclass(frozen=True)
class CheckInfo:
    """The settings of one check that bear on probe configuration."""

    name: str
    probes: frozenset[str]
    timeout: float
    interval: float
    initial_delay: float = 0.0
    jitter: float = 0.0
    failure_threshold: int = 1


@dataclass(frozen=True)
class AppInfo:
    """A gracekit app's probes and timings.

    Built from an app by :func:`inspect_app`, or from defaults and flags when there is no app
    to import (then ``source`` is None and the app is assumed to have one shutdown hook bounded
    by ``hook_timeout``).

    Parameters:
        timing: the shutdown timings in the code (the container's environment may override
            them: see :mod:`gracekit.kubernetes.timing`).
        hooks: the bound of each shutdown hook in seconds; None means the timing's
            ``hook_timeout``.
        health_path: where the :class:`~gracekit.ProbeApp` is mounted, or None if the app
            mounts none.
        serves_prestop: the probe app serves ``<health_path>/prestop`` on the app's port.
        prestop_protected: that ``/prestop`` needs a token.
        prestop_header: the header that carries its token (None: ``Authorization: Bearer``).
        management: the management port in the code (the container's environment and
            command may set or override its port: see :meth:`management_in`), or None.
        checks: the dependency checks.
        gates: the names of the gates.
        startup_tasks: ``(name, timeout)`` of each startup task; None is unbounded.
        loop_lag_threshold: the event-loop lag beyond which liveness fails.
        ready_jitter: the longest random delay before the first "ready".
        source: ``MODULE:APP`` when read from an app.
    """

    timing: ShutdownTiming = field(default_factory=ShutdownTiming)
    hooks: tuple[float | None, ...] = (None,)
    health_path: str | None = DEFAULT_HEALTH_PATH
    serves_prestop: bool = False
    prestop_protected: bool = False
    prestop_header: str | None = None
    management: Management | None = None
    checks: tuple[CheckInfo, ...] = ()
    gates: tuple[str, ...] = ()
    startup_tasks: tuple[tuple[str, float | None], ...] = ()
    loop_lag_threshold: float = DEFAULT_LOOP_LAG_THRESHOLD
    ready_jitter: float = 0.0
    source: str | None = None

    def hooks_total(self, timing: ShutdownTiming | None = None) -> float:
        """The total bound of the shutdown hooks under *timing* (default the code's)."""
        hook_timeout = (timing or self.timing).hook_timeout
        return sum(hook_timeout if bound is None else bound for bound in self.hooks)

    def startup_work(self) -> float | None:
        """The longest the startup may take once the server answers: the slowest startup
        task, or the first passing run of the slowest check that gates startup (they run
        concurrently). None when a startup task has no timeout."""
        longest = 0.0
        for _, timeout in self.startup_tasks:
            if timeout is None:
                return None
            longest = max(longest, timeout)
        for check in self.checks:
            if "startup" in check.probes:
                first_run = check.initial_delay * (1 + check.jitter) + check.timeout
                longest = max(longest, first_run)
        return longest

    def probe_names(self) -> frozenset[str]:
        """The names ``/ready/NAME`` answers for."""
        return frozenset(check.name for check in self.checks) | frozenset(self.gates)

    def with_timing(self, timing: ShutdownTiming) -> AppInfo:
        """A copy with other shutdown timings."""
        return replace(self, timing=timing)

    def management_in(
        self, environ: Mapping[str, str], *, port: int | None = None
    ) -> Management | None:
        """The management port a container runs the app with: the code's, with the port of
        ``GRACEKIT_MANAGEMENT_PORT`` in its *environ*, then of ``gracekit run
        --management-port`` (*port*), which sets that variable.

        Raises:
            ValueError: the variable is set, and not to a port number.
        """
        if port is not None:
            environ = {**environ, MANAGEMENT_PORT_VARIABLE: str(port)}
        return Management.from_env(environ, base=self.management)


def inspect_app(app: object, *, source: str | None = None) -> AppInfo:
    """Read what the Kubernetes side needs from *app* (Starlette, FastAPI, or any ASGI app
    wrapped in :class:`~gracekit.DrainMiddleware`).

    Raises:
        AppLoadError: no gracekit lifecycle is reachable from *app*, or two different ones are.
    """
    found = _Found()
    found.walk(app, "", 0)
    lifecycles = {id(lc): lc for lc in found.lifecycles}
    name = source or type(app).__name__
    if not lifecycles:
        raise AppLoadError(
            f"{name} has no gracekit Lifecycle: mount a ProbeApp(lifecycle) in it, or add "
            "DrainMiddleware(lifecycle=...)"
        )
    if len(lifecycles) > 1:
        raise AppLoadError(f"{name} uses {len(lifecycles)} different Lifecycles; use one")
    lifecycle: Lifecycle = next(iter(lifecycles.values()))
    probe_path, probe_app = found.probe_apps[0] if found.probe_apps else (None, None)
    return AppInfo(
        timing=lifecycle.timing,
        hooks=tuple(hook.timeout for hook in lifecycle.termination.hooks),
        health_path=probe_path,
        serves_prestop=probe_app is not None and probe_app.serves_prestop,
        prestop_protected=probe_app is not None and probe_app.prestop_protected,
        prestop_header=None if probe_app is None else probe_app.prestop_header,
        management=lifecycle.management,
        checks=tuple(
            CheckInfo(
                name=state.check.name,
                probes=state.check.probes,
                timeout=state.check.timeout,
                interval=state.check.interval,
                initial_delay=state.check.initial_delay,
                jitter=state.check.jitter,
                failure_threshold=state.check.failure_threshold,
            )
            for state in lifecycle.checks.values()
        ),
        gates=tuple(lifecycle.gates),
        startup_tasks=tuple((t.name, t.timeout) for t in lifecycle.startup_tasks.values()),
        loop_lag_threshold=lifecycle.loop_lag_threshold,
        ready_jitter=lifecycle.ready_jitter,
        source=source,
    )


class _Found:
    """What a walk through the app's middleware and mounts found."""

    def __init__(self) -> None:
        self.lifecycles: list[Lifecycle] = []
        self.probe_apps: list[tuple[str, ProbeApp]] = []
        self._seen: set[int] = set()

    def _lifecycle(self, found: object) -> None:
        # They take any object shaped like one (a protocol); only a Lifecycle is inspected.
        if isinstance(found, Lifecycle):
            self.lifecycles.append(found)

    def walk(self, app: object, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH or id(app) in self._seen:
            return
        self._seen.add(id(app))
        if isinstance(app, ProbeApp):
            self.probe_apps.append((prefix or "/", app))
            self._lifecycle(app.lifecycle)
            return
        if isinstance(app, DrainMiddleware):
            self._lifecycle(app.lifecycle)
        for middleware in getattr(app, "user_middleware", None) or ():
            cls = getattr(middleware, "cls", None)
            if isinstance(cls, type) and issubclass(cls, DrainMiddleware):
                lifecycle = getattr(middleware, "kwargs", {}).get("lifecycle")
                if isinstance(lifecycle, Lifecycle):
                    self.lifecycles.append(lifecycle)
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            for route in routes:
                sub = getattr(route, "app", None)
                path = getattr(route, "path", "")
                # A Mount has a path and an app; a Host routes by name, not path.
                if sub is not None and isinstance(path, str):
                    self.walk(sub, prefix + path.rstrip("/"), depth + 1)
        inner = getattr(app, "app", None)
        if inner is not None:
            self.walk(inner, prefix, depth + 1)


@contextmanager
def _environment(overlay: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in overlay}
    os.environ.update(overlay)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_app(
    spec: str,
    *,
    app_dir: str = "",
    factory: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Import ``MODULE:APP`` (``APP`` may be dotted), from *app_dir* first, as ``gracekit run``
    does; call it when *factory*. *environ* is set in ``os.environ`` while the module is
    imported (an app that reads its settings at import sees the container's values), then
    taken back.

    Raises:
        AppLoadError: a malformed spec, an import that fails, or a missing attribute.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AppLoadError(f"the app must be given as MODULE:APP, got {spec!r}")
    directory = os.path.abspath(app_dir) if app_dir else os.getcwd()
    if directory not in sys.path:
        sys.path.insert(0, directory)
    with _environment(environ or {}):
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise AppLoadError(
                f"cannot import {module_name!r} (from {directory}): {describe_error(exc)}"
            ) from exc
        for part in attribute.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AppLoadError(f"{module_name!r} has no attribute {attribute!r}") from None
        if factory:
            if not callable(obj):
                raise AppLoadError(f"{spec} is not callable, but --factory was given")
            try:
                obj = obj()
            except Exception as exc:
                raise AppLoadError(
                    f"calling the factory {spec} failed: {describe_error(exc)}"
                ) from exc
    return obj
