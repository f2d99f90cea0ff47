"""The settings of a simulated rollout, as small frozen value objects.

Times are in seconds. The kubelet's defaults are Kubernetes' own scaled down (probe periods of
a fraction of a second instead of 10 s) so that a rollout takes seconds on a laptop; the grace
period keeps Kubernetes' default of 30 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import _validate
from .pods import PodCommand

__all__ = [
    "KubeletSettings",
    "LoadSettings",
    "PreStop",
    "Probe",
    "RolloutSettings",
]


def _count(value: object, *, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return value


def _share(value: object, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number in [0, 1], not {type(value).__name__}")
    if not 0 <= value <= 1:  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 1], got {value!r}")
    return float(value)


def _path(value: object, *, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(f"{what} must be a path starting with '/', without spaces: {value!r}")
    return value


_PROBE_KEYS = {
    "path": "path",
    "period": "period",
    "timeout": "timeout",
    "failure": "failure_threshold",
    "success": "success_threshold",
}


@dataclass(frozen=True)
class Probe:
    """An HTTP GET probe, as in a container spec: *path* answers 200-399 to pass; it runs
    every *period*, each try bounded by *timeout*; *failure_threshold* failures in a row fail
    it, *success_threshold* successes in a row pass it again."""

    path: str
    period: float = 1.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1

    def __post_init__(self) -> None:
        _path(self.path, what="probe path")
        object.__setattr__(self, "period", _validate.seconds(self.period, what="probe period"))
        object.__setattr__(self, "timeout", _validate.seconds(self.timeout, what="probe timeout"))
        _count(self.failure_threshold, what="probe failure threshold")
        _count(self.success_threshold, what="probe success threshold")

    def updated(self, spec: str) -> Probe | None:
        """This probe changed by *spec*: ``none`` (no probe), a path, or comma-separated
        ``key=value`` pairs among path, period, timeout, failure and success
        (``"path=/health/ready,period=0.5,failure=2"``).

        Raises:
            ValueError: an unknown key or a value out of range.
        """
        spec = spec.strip()
        if spec == "none":
            return None
        if spec.startswith("/"):
            return replace(self, path=spec)
        changes: dict[str, object] = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in _PROBE_KEYS:
                raise ValueError(
                    f"probe settings are key=value pairs among {', '.join(_PROBE_KEYS)}, or a "
                    f"path, or 'none'; got {item.strip()!r}"
                )
            value = value.strip()
            try:
                converted: object = (
                    value
                    if key == "path"
                    else int(value)
                    if key in ("failure", "success")
                    else float(value)
                )
            except ValueError:
                raise ValueError(f"probe {key} must be a number, got {value!r}") from None
            changes[_PROBE_KEYS[key]] = converted
        return replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        success = f", success {self.success_threshold}" if self.success_threshold > 1 else ""
        return (
            f"{self.path} every {self.period:g} s, timeout {self.timeout:g} s, "
            f"failure {self.failure_threshold}{success}"
        )


@dataclass(frozen=True)
class PreStop:
    """A container's preStop hook: ``none``, ``sleep`` for *seconds*, or an HTTP GET of *path*
    on the pod's port (which may take as long as the grace period allows)."""

    kind: str = "none"
    seconds: float = 0.0
    path: str = ""
    #: Headers the HTTP hook sends (Kubernetes' ``httpHeaders``: a token, say).
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("none", "sleep", "http"):
            raise ValueError(f"preStop must be none, sleep or http, got {self.kind!r}")
        _validate.seconds(self.seconds, what="preStop sleep", allow_zero=True)
        if self.kind == "http":
            _path(self.path, what="preStop path")
        elif self.headers:
            raise ValueError("preStop headers go with an http hook")
        for name, value in self.headers:
            if not name or ":" in name or any(c in name + value for c in "\r\n"):
                raise ValueError(f"a preStop header must be 'Name: value', got {name!r}")

    @staticmethod
    def header(spec: str) -> tuple[str, str]:
        """``Name: value`` as a pair (an argparse type for ``--prestop-header``)."""
        name, found, value = spec.partition(":")
        if not found or not name.strip() or "\r" in spec or "\n" in spec:
            raise ValueError(f"a preStop header must be 'Name: value', got {spec!r}")
        return name.strip(), value.strip()

    @classmethod
    def parse(cls, spec: str) -> PreStop:
        """``none``, ``sleep:SECONDS`` or ``http:PATH``.

        Raises:
            ValueError: anything else.
        """
        kind, _, value = spec.strip().partition(":")
        if kind == "none" and not value:
            return cls()
        if kind == "sleep":
            try:
                return cls("sleep", seconds=float(value))
            except ValueError:
                raise ValueError(f"preStop sleep needs seconds (sleep:3), got {spec!r}") from None
        if kind == "http" and value:
            return cls("http", path=value)
        raise ValueError(f"preStop must be none, sleep:SECONDS or http:PATH, got {spec!r}")

    def __str__(self) -> str:
        if self.kind == "sleep":
            return f"sleep {self.seconds:g} s"
        return f"GET {self.path}" if self.kind == "http" else "none"


@dataclass(frozen=True)
class KubeletSettings:
    """What the kubelet does with each pod: its probes (None: no such probe), its preStop
    hook, and the grace period, counted from the start of the preStop hook."""

    startup: Probe | None = Probe("/health/startup", period=0.2, failure_threshold=150)
    liveness: Probe | None = Probe("/health/live", period=1.0, failure_threshold=3)
    readiness: Probe | None = Probe("/health/ready", period=0.5, failure_threshold=2)
    prestop: PreStop = PreStop()
    grace_period: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "grace_period", _validate.seconds(self.grace_period, what="grace period")
        )


@dataclass(frozen=True)
class LoadSettings:
    """The open-loop load: *rate* requests a second, whatever the answers; a *slow_share* of
    them to *slow_path*, the rest to *path*; a *keepalive_share* over pooled keep-alive
    connections (unused for *keepalive_expiry* s, one is dropped), the rest each on a fresh
    connection. A request with no full answer *request_timeout* s after it was due counts as a
    timeout."""

    rate: float = 200.0
    path: str = "/"
    slow_path: str = "/slow?ms=300"
    slow_share: float = 0.1
    keepalive_share: float = 0.5
    request_timeout: float = 5.0
    keepalive_expiry: float = 2.0
    seed: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise TypeError(f"rate must be a number of requests per second, not {self.rate!r}")
        if not 0 < self.rate < math.inf:  # also rejects NaN
            raise ValueError(f"rate must be a number of requests per second > 0, got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate))
        _path(self.path, what="load path")
        _path(self.slow_path, what="slow path")
        _share(self.slow_share, what="slow share")
        _share(self.keepalive_share, what="keep-alive share")
        _validate.seconds(self.request_timeout, what="request timeout")
        _validate.seconds(self.keepalive_expiry, what="keep-alive expiry")


@dataclass(frozen=True)
class RolloutSettings:
    """One simulated rollout: *replicas* pods of *command* at ``VERSION=v1``, replaced one by
    one by ``VERSION=v2`` (maxSurge 1, maxUnavailable 0), behind an Envoy in *proxy* mode
    (``l7`` or ``l4``) that learns of every endpoint change *propagation_delay* s late.

    The load runs for *before* s, then through the rollout, then *after* s more, and on until
    it has sent *min_requests*; it never sends more than *max_requests*, and the whole run is
    bounded by *max_duration*. A new pod that is not ready within *progress_deadline* fails
    the rollout.
    """

    command: PodCommand
    replicas: int = 3
    proxy: str = "l7"
    retries: int = 0
    propagation_delay: float = 2.0
    kubelet: KubeletSettings = field(default_factory=KubeletSettings)
    load: LoadSettings = field(default_factory=LoadSettings)
    before: float = 3.0
    after: float = 2.0
    min_requests: int = 0
    max_requests: int = 100_000
    max_duration: float = 300.0
    progress_deadline: float = 60.0
    versions: tuple[str, str] = ("v1", "v2")
    work_dir: Path | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.command, PodCommand):
            raise TypeError(f"command must be a PodCommand, not {type(self.command).__name__}")
        _count(self.replicas, what="replicas")
        if self.proxy not in ("l7", "l4"):
            raise ValueError(f"proxy must be l7 or l4, got {self.proxy!r}")
        _count(self.retries, what="retries", minimum=0)
        if self.retries and self.proxy == "l4":
            raise ValueError("retries need the l7 proxy: a TCP proxy cannot retry a request")
        for name in ("propagation_delay", "before", "after"):
            _validate.seconds(getattr(self, name), what=name.replace("_", " "), allow_zero=True)
        for name in ("max_duration", "progress_deadline"):
            _validate.seconds(getattr(self, name), what=name.replace("_", " "))
        _count(self.min_requests, what="min requests", minimum=0)
        _count(self.max_requests, what="max requests")
        if self.min_requests > self.max_requests:
            raise ValueError(
                f"min requests ({self.min_requests}) must not exceed max requests "
                f"({self.max_requests})"
            )
        if len(self.versions) != 2 or self.versions[0] == self.versions[1]:
            raise ValueError(f"versions must be two different names, got {self.versions!r}")
