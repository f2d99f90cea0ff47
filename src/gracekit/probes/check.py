"""What a check is: a name, an async callable and the settings that govern how it is run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .. import _validate
from ._secrets import Secrets

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_JITTER",
    "DEFAULT_TIMEOUT",
    "STARTUP_ONLY",
    "Check",
    "CheckFunction",
]

#: A check passes by returning (``None`` or a small mapping of details) and fails by raising.
CheckFunction = Callable[[], Awaitable[Mapping[str, Any] | None]]

DEFAULT_TIMEOUT = 1.0
DEFAULT_INTERVAL = 5.0
DEFAULT_JITTER = 0.1

_PROBES = ("startup", "readiness")
_INFORMATIONAL = "informational"
#: The probes of a check that gates only startup: it stops running once it has passed.
STARTUP_ONLY = frozenset({"startup"})


def _parse_probes(probes: object, check_name: str) -> frozenset[str]:
    if isinstance(probes, str):
        items: Iterable[object] = () if probes == _INFORMATIONAL else (probes,)
    elif isinstance(probes, Iterable):
        items = probes
    else:
        raise TypeError(
            f"probes of check {check_name!r} must be a str or an iterable of str, "
            f"not {type(probes).__name__}"
        )
    parsed = set()
    items = list(items)
    if _INFORMATIONAL in items:
        if len(items) > 1:
            raise ValueError(
                f"check {check_name!r} cannot be 'informational' and gate {items!r} at once"
            )
        items = []
    for item in items:
        if item not in _PROBES:
            hint = (
                " (liveness never runs dependency checks: it must not restart every pod"
                " when a shared dependency fails)"
                if item == "liveness"
                else ""
            )
            raise ValueError(
                f"unknown probe kind {item!r} for check {check_name!r}: use 'startup', "
                f"'readiness', both, or 'informational'{hint}"
            )
        parsed.add(str(item))
    return frozenset(parsed)


class Check:
    """A named dependency check.

    Parameters:
        name: unique among the lifecycle's checks and gates; no '/' or whitespace.
        func: an async callable taking no arguments. It passes by returning ``None`` or a small
            mapping of details, and fails by raising.
        timeout: seconds one run may take before it counts as failed.
        interval: seconds between the starts of two runs; must be >= ``timeout``.
        probes: which probes the check gates: ``"readiness"`` (default), ``"startup"``, an
            iterable of both, or ``"informational"`` (reported, gating nothing: for shared
            dependencies whose failure should not take every pod out of rotation).
        failure_threshold: consecutive failures before a passing check counts as failing.
        success_threshold: consecutive successes before a failing check counts as passing.
        initial_delay: seconds to wait after startup before the first run.
            A check that gates only startup stops running once it has passed (like
            Kubernetes' startup probe) and reports "pass" from then on.
        jitter: fraction (0 <= jitter < 1) by which the interval and initial delay are
            randomised, so a fleet of pods does not poll a dependency in lockstep.
        stale_after: seconds after the last result at which it counts as failing ("stale");
            default ``3 * interval + timeout + housekeeping_timeout``.
        housekeeping_timeout: for a function that bounds the round trip it measures by
            *timeout* itself (the built-in checks time only their query, not taking a
            connection and giving it back): the seconds the rest may take on top. The runner
            then bounds a whole run by ``timeout + housekeeping_timeout``. None (the default):
            *timeout* bounds the whole function.
        secrets: passwords, tokens, or URLs and DSNs with credentials that the check knows:
            they are masked in its error texts, and so are the pieces of them a parser may
            repeat (see :class:`~gracekit.probes._secrets.Secrets`). The built-in checks add
            their own URL's, DSN's or pool's.

    Raises:
        TypeError, ValueError: for a setting of the wrong type or out of range.
    """

    __slots__ = (
        "failure_threshold",
        "func",
        "housekeeping_timeout",
        "initial_delay",
        "interval",
        "jitter",
        "name",
        "probes",
        "secrets",
        "stale_after",
        "success_threshold",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        func: CheckFunction,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        interval: float = DEFAULT_INTERVAL,
        probes: str | Iterable[str] = "readiness",
        failure_threshold: int = 1,
        success_threshold: int = 1,
        initial_delay: float = 0.0,
        jitter: float = DEFAULT_JITTER,
        stale_after: float | None = None,
        housekeeping_timeout: float | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.name = _validate.name(name, what="check name")
        if not callable(func):
            raise TypeError(f"check {name!r} needs an async callable, got {type(func).__name__}")
        self.func = func
        self.timeout = _validate.seconds(timeout, what=f"timeout of check {name!r}")
        self.interval = _validate.seconds(interval, what=f"interval of check {name!r}")
        if self.interval < self.timeout:
            raise ValueError(
                f"interval of check {name!r} ({interval!r} s) is shorter than its timeout "
                f"({timeout!r} s): runs would overlap; make the interval >= the timeout"
            )
        self.probes = _parse_probes(probes, name)
        self.failure_threshold = _validate.positive_int(
            failure_threshold, what=f"failure_threshold of check {name!r}"
        )
        self.success_threshold = _validate.positive_int(
            success_threshold, what=f"success_threshold of check {name!r}"
        )
        self.initial_delay = _validate.seconds(
            initial_delay, what=f"initial_delay of check {name!r}", allow_zero=True
        )
        self.jitter = _validate.fraction(jitter, what=f"jitter of check {name!r}")
        self.housekeeping_timeout = _validate.optional_seconds(
            housekeeping_timeout, what=f"housekeeping_timeout of check {name!r}"
        )
        self.secrets = Secrets(secrets)
        if stale_after is None:
            self.stale_after = 3 * self.interval + self.run_bound
        else:
            self.stale_after = _validate.seconds(stale_after, what=f"stale_after of check {name!r}")
            if self.stale_after < self.interval:
                raise ValueError(
                    f"stale_after of check {name!r} ({stale_after!r} s) is shorter than its "
                    f"interval ({interval!r} s): every result would go stale before the next"
                )

    @property
    def run_bound(self) -> float:
        """The longest one run may take: *timeout*, plus *housekeeping_timeout* if set."""
        return self.timeout + (self.housekeeping_timeout or 0.0)

    @property
    def informational(self) -> bool:
        """True when the check gates no probe: it is reported but never fails one."""
        return not self.probes

    def __repr__(self) -> str:
        probes = "+".join(sorted(self.probes)) or _INFORMATIONAL
        return (
            f"Check({self.name!r}, probes={probes!r}, timeout={self.timeout:g}, "
            f"interval={self.interval:g})"
        )
