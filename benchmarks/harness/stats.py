"""Figures from load runs: the Sample a load generator returns, medians, ratios, targets.

A benchmark compares scenarios by the ratio of their medians over interleaved rounds, and shows
next to it the lowest and highest of the same ratio taken round by round: a wide range means
the machine was noisy. A ratio may carry a target (``at_least`` or ``at_most``), judged
``PASS`` or ``MISS``; a miss is reported, never raised.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Two identical processes serving the same route differ by less than this when the machine is
# quiet; a control ratio further from 1 in any round means something else took the CPU.
CONTROL_SPREAD = 0.10


@dataclass
class Sample:
    """One load run: what a load generator saw in *seconds* of keeping every connection busy.

    ``extra`` holds counters a benchmark sampled around the run (their increase during it), such
    as connections a fake dependency accepted; they are summed per scenario in the summary.
    """

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]
    scenario: str = ""
    round: int = 0
    cpu_us_per_request: float = math.nan  # the server's CPU time (user + system) per answer
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The sample as JSON-ready data, with the extra counters as fields of their own."""
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra, "rps": self.rps}


def percentile(ordered: Sequence[float], q: float) -> float:
    """The *q*-th percentile (nearest rank) of sorted *ordered*; NaN when it is empty."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(runs: Sequence[Sample]) -> dict[str, Any]:
    """One scenario's figures over its rounds: medians, status and error counts, totals."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    extra: dict[str, float] = {}
    for s in runs:
        statuses.update(s.statuses)
        errors.update(s.errors)
        for key, value in s.extra.items():
            extra[key] = extra.get(key, 0) + value
    return {
        "rps": statistics.median(s.rps for s in runs),
        "p50_ms": statistics.median(s.p50_ms for s in runs),
        "p99_ms": statistics.median(s.p99_ms for s in runs),
        "cpu_us_per_request": statistics.median(s.cpu_us_per_request for s in runs),
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(errors),
        **extra,
        "seconds": sum(s.seconds for s in runs),
    }


@dataclass
class Ratio:
    """A ratio of two scenarios' medians, its per-round range, and its target if it has one."""

    label: str
    value: float
    low: float  # the spread of the same ratio taken round by round
    high: float
    target: str | None = None  # ">= 0.9", "<= 1.2", or None for information only
    verdict: str = "info"  # "PASS" or "MISS" when there is a target


def ratio(
    label: str,
    samples: Mapping[str, Sequence[Sample]],
    top: str,
    bottom: str,
    figure: str = "req/s",
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Ratio:
    """The median of *figure* in scenario *top* over its median in scenario *bottom*.

    *figure* is ``"req/s"`` or a numeric Sample field (``"p99_ms"``, ``"cpu_us_per_request"``).
    The rounds of the two scenarios are paired in order for the per-round range. With
    *at_least* or *at_most* (not both) the ratio is judged against that target.

    Raises ValueError when both targets are given.
    """
    if at_least is not None and at_most is not None:
        raise ValueError("a ratio takes at_least or at_most, not both")

    def pick(s: Sample) -> float:
        return s.rps if figure == "req/s" else float(getattr(s, figure))

    def median(name: str) -> float:
        return statistics.median(pick(s) for s in samples[name])

    rounds = [
        pick(a) / pick(b) for a, b in zip(samples[top], samples[bottom], strict=True) if pick(b)
    ]
    value = median(top) / median(bottom) if median(bottom) else math.nan
    result = Ratio(label, value, min(rounds, default=math.nan), max(rounds, default=math.nan))
    if at_least is not None:
        result.target = f">= {at_least:g}"
        result.verdict = "PASS" if value >= at_least else "MISS"
    elif at_most is not None:
        result.target = f"<= {at_most:g}"
        result.verdict = "PASS" if value <= at_most else "MISS"
    return result


def noise_warning(control: Ratio, *, spread: float = CONTROL_SPREAD) -> str | None:
    """Why the figures are unreliable, when a control ratio left ``1 ± spread`` in any round.

    A control compares two runs that should be equal (the same route on two identical server
    processes); when a round puts them apart, something else on the machine took the CPU.
    """
    if 1 - spread <= control.low <= control.high <= 1 + spread:
        return None
    return (
        f"the control ratio ranged {control.low:.2f}..{control.high:.2f} over the rounds: "
        "something else used the CPU, so these figures are unreliable; run again, or run "
        "more and shorter rounds"
    )
