"""What the environment tells gracekit: every ``GRACEKIT_*`` variable is read here, and only here.

The environment configures a release without a new image (``gracekit run --shutdown-delay``
sets these variables for its workers; the manifests gracekit writes set the grace period). The
code's own configuration stays explicit arguments; :class:`Settings` is what overrides it.
Each value is parsed when asked for, so a bad variable fails the step that needs it, with a
message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import _validate

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "GRACE_PERIOD_VARIABLE",
    "MANAGEMENT_HOST_VARIABLE",
    "MANAGEMENT_PORT_VARIABLE",
    "PRESTOP_TOKEN_VARIABLE",
    "WORKERS_VARIABLE",
    "Settings",
]

#: The shutdown timings, by field of :class:`~gracekit.ShutdownTiming`.
ENVIRONMENT_VARIABLES = {
    "delay": "GRACEKIT_SHUTDOWN_DELAY",
    "drain_timeout": "GRACEKIT_DRAIN_TIMEOUT",
    "hook_timeout": "GRACEKIT_HOOK_TIMEOUT",
}
#: Set it to the pod's ``terminationGracePeriodSeconds`` (the manifests gracekit writes do; the
#: gunicorn worker sets it from ``graceful_timeout``) and startup warns when it is too short.
GRACE_PERIOD_VARIABLE = "GRACEKIT_GRACE_PERIOD"
#: Set (``gracekit run --management-port``), it overrides the code's port when the app starts.
MANAGEMENT_PORT_VARIABLE = "GRACEKIT_MANAGEMENT_PORT"
#: Set, it overrides the address the management port binds.
MANAGEMENT_HOST_VARIABLE = "GRACEKIT_MANAGEMENT_HOST"
#: Set, the token the management port's preStop hook needs (the value the hook sends).
PRESTOP_TOKEN_VARIABLE = "GRACEKIT_PRESTOP_TOKEN"
#: How many uvicorn worker processes ``gracekit run`` started (they inherit it).
WORKERS_VARIABLE = "GRACEKIT_UVICORN_WORKERS"
#: Set by Kubernetes in every pod: ``GRACEKIT_SHUTDOWN_DELAY=auto`` keeps the delay there only.
_IN_KUBERNETES = "KUBERNETES_SERVICE_HOST"


@dataclass(frozen=True)
class Settings:
    """The ``GRACEKIT_*`` variables of *environ* (default: this process's environment)."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def _text(self, variable: str) -> str:
        return self.environ.get(variable, "").strip()

    def shutdown_timings(self) -> dict[str, float]:
        """The shutdown timings the environment sets, by field (those not set are left out).
        ``GRACEKIT_SHUTDOWN_DELAY=auto`` is 0 outside Kubernetes, and left out inside it.

        Raises:
            ValueError: a variable that is set but is not a number of seconds.
        """
        values: dict[str, float] = {}
        for name, variable in ENVIRONMENT_VARIABLES.items():
            raw = self.environ.get(variable)
            if raw is None or not raw.strip():
                continue
            if name == "delay" and raw.strip() == "auto":
                # Only a pod behind Kubernetes' endpoints needs to wait for proxies to catch up.
                if not self.environ.get(_IN_KUBERNETES):
                    values["delay"] = 0.0
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise ValueError(f"{variable} must be a number of seconds, got {raw!r}") from None
        return values

    def grace_period(self) -> float | None:
        """The grace period ``GRACEKIT_GRACE_PERIOD`` announces, if set.

        Raises:
            ValueError: it is set but is not a positive number of seconds.
        """
        raw = self._text(GRACE_PERIOD_VARIABLE)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"{GRACE_PERIOD_VARIABLE} must be a number of seconds, got {raw!r}"
            ) from None
        return _validate.seconds(value, what=GRACE_PERIOD_VARIABLE)

    def management_port(self) -> int | None:
        """The port of ``GRACEKIT_MANAGEMENT_PORT``, if set (0: any free one).

        Raises:
            ValueError: it is set but is not a port number.
        """
        raw = self._text(MANAGEMENT_PORT_VARIABLE)
        if not raw:
            return None
        try:
            return _validate.port(int(raw), what=MANAGEMENT_PORT_VARIABLE, allow_zero=True)
        except (TypeError, ValueError):
            raise ValueError(
                f"{MANAGEMENT_PORT_VARIABLE} must be a port number, got {raw!r}"
            ) from None

    def management_host(self) -> str | None:
        """The address of ``GRACEKIT_MANAGEMENT_HOST``, if set."""
        return self._text(MANAGEMENT_HOST_VARIABLE) or None

    def prestop_token(self) -> str | None:
        """The preStop token of ``GRACEKIT_PRESTOP_TOKEN``, as set (not stripped), if set."""
        return self.environ.get(PRESTOP_TOKEN_VARIABLE) or None

    def uvicorn_workers(self) -> int:
        """How many uvicorn worker processes serve the app with this one, as ``gracekit run``
        told them; 1 when it did not."""
        try:
            return max(1, int(self.environ.get(WORKERS_VARIABLE, "1")))
        except ValueError:
            return 1
