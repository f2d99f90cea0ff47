"""Scenarios measured in interleaved rounds, so that slow drift spreads over all of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .cli import progress
from .load import Load
from .servers import Server
from .stats import Sample


@dataclass(frozen=True)
class Scenario:
    """One thing to measure: ``GET path`` on the server a benchmark calls *server*."""

    name: str
    server: str
    path: str


def run_rounds(
    load: Load,
    scenarios: Sequence[Scenario],
    servers: Mapping[str, Server],
    *,
    rounds: int,
    duration: float,
    warmup: float = 0.0,
    counters: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, list[Sample]]:
    """Load every scenario for *duration* seconds in each of *rounds* rounds; the samples.

    First each scenario gets *warmup* seconds of unmeasured load. The order of the scenarios
    rotates from round to round, so that none always runs first or last. Each sample gets the
    server's CPU time per answer, and the increase of each of *counters* (name: a callable that
    reads a running count) during its run, in ``Sample.extra``. A progress line per run goes
    to stderr.
    """
    counters = counters or {}
    width = max([14, *(len(s.name) for s in scenarios)])
    if warmup > 0:
        for scenario in scenarios:
            load.run(servers[scenario.server].url + scenario.path, warmup)
    samples: dict[str, list[Sample]] = {s.name: [] for s in scenarios}
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(scenarios)  # every scenario takes every position
        for scenario in [*scenarios[shift:], *scenarios[:shift]]:
            server = servers[scenario.server]
            before = {name: read() for name, read in counters.items()}
            cpu = server.cpu_seconds()
            sample = load.run(server.url + scenario.path, duration)
            sample.scenario, sample.round = scenario.name, round_no
            if sample.requests:
                sample.cpu_us_per_request = (server.cpu_seconds() - cpu) / sample.requests * 1e6
            sample.extra = {name: read() - before[name] for name, read in counters.items()}
            samples[scenario.name].append(sample)
            progress(
                f"round {round_no}/{rounds} {scenario.name:<{width}} {sample.rps:8.0f} req/s"
                f"  p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:6.2f} ms"
                f"  cpu {sample.cpu_us_per_request:5.0f} us/req"
            )
    return samples
