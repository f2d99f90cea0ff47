"""What each probe answers, computed from the lifecycle's state (pure functions)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ._runner import CheckState, CheckStatus
from .check import STARTUP_ONLY
from .conditions import Gate, ProbeResult, StartupTask

__all__ = ["liveness_verdict", "readiness_verdict", "startup_verdict"]


def startup_verdict(
    *,
    passed: bool,
    running: bool,
    tasks: Iterable[StartupTask],
    checks: Iterable[CheckState],
) -> ProbeResult:
    """Has startup succeeded (*passed*)? If not, why not yet."""
    if passed:
        return ProbeResult(True, "pass")
    reasons = [
        f"startup task {t.name}: {t.status.value}"
        for t in tasks
        if t.status is not CheckStatus.PASS
    ]
    reasons += [
        f"check {s.check.name}: not passed yet"
        for s in checks
        if "startup" in s.check.probes and not s.ever_passed
    ]
    if not running:
        reasons.insert(0, "not running")
    elif not reasons:
        reasons.append("starting")
    return ProbeResult(False, "fail", reasons)


def liveness_verdict(*, broken: str | None, lag: float, threshold: float) -> ProbeResult:
    """Can the process make progress? Only its own state counts, never a dependency."""
    reasons = []
    if broken is not None:
        reasons.append("broken")
    if lag > threshold:
        reasons.append(f"event loop lag {lag:.3f} s > {threshold:g} s")
    return ProbeResult(not reasons, "fail" if reasons else "pass", reasons)


def readiness_verdict(
    *,
    phase: str,
    running: bool,
    ready_at: float | None,
    broken: str | None,
    checks: Iterable[CheckState],
    gates: Iterable[Gate],
    exclude: Collection[str],
    now: float,
) -> ProbeResult:
    """Should the pod receive traffic at monotonic time *now*? Checks and gates named in
    *exclude* are ignored; a failing informational check makes it "degraded", still ready."""
    reasons = []
    if phase != "started":
        reasons.append(f"phase {phase}")
        if not running and phase == "starting":
            reasons.append("not running: is the lifecycle's lifespan installed?")
    elif ready_at is not None and now < ready_at:
        reasons.append(f"ready jitter: {ready_at - now:.3f} s left")
    if broken is not None:
        reasons.append("broken")
    informational = []
    for state in checks:
        probes = state.check.probes
        if probes == STARTUP_ONLY or state.check.name in exclude:
            continue  # a startup-only check has had its say at startup
        status = state.status(now)
        if status is CheckStatus.PASS:
            continue
        if probes:
            reasons.append(f"check {state.check.name}: {status.value}")
        else:
            informational.append(f"check {state.check.name}: {status.value} (informational)")
    reasons += [f"gate {g.name}: closed" for g in gates if not g.is_open and g.name not in exclude]
    if reasons:
        return ProbeResult(False, "fail", reasons + informational)
    return ProbeResult(True, "degraded" if informational else "pass", informational)
