"""The simulator's purpose, with real processes and a real Envoy: the bundled app under
gracekit loses no request during a rolling update, and under plain uvicorn it does."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from gracekit.rollout.demo import demo_settings
from gracekit.rollout.simulator import RunResult, Simulation

pytestmark = pytest.mark.timeout(90)

# The pods' termination and the proxy's propagation delay (2 s) overlap in every step; 3,000
# requests at 200 req/s is 15 s of load, enough for the three steps of the rollout.
MIN_REQUESTS = 3000


def simulate(server: str, proxy: str) -> RunResult:
    settings = demo_settings(server, proxy=proxy, before=1.0, after=1.0, min_requests=MIN_REQUESTS)
    return anyio.run(Simulation(settings).run)


def failures(result: RunResult) -> Counter[str]:
    assert result.load is not None
    return Counter(outcome.kind for outcome in result.load.outcomes if outcome.failed)


@pytest.mark.parametrize("proxy", ["l7", "l4"])
def test_gracekit_loses_no_request(proxy: str) -> None:
    result = simulate("gracekit", proxy)
    assert result.error is None
    assert result.load is not None
    assert result.load.sent >= MIN_REQUESTS
    assert len(result.load.outcomes) == result.load.sent  # every request was accounted for
    assert failures(result) == Counter()
    versions = Counter(outcome.version for outcome in result.load.outcomes)
    assert versions["v1"] > 0, versions
    assert versions["v2"] > 0, versions
    old = [run for run in result.pods if run.pod.version == "v1"]
    assert len(old) == 3
    for run in old:
        stop = run.kubelet.termination
        assert stop is not None, run.pod.name
        assert not stop.killed, (run.pod.name, stop)
        assert stop.exit_code == 0, (run.pod.name, stop)
        # gracekit served through its 3 s delay, longer than the 2 s propagation delay.
        assert (stop.sigterm_to_exit or 0) >= 2.9, (run.pod.name, stop)


@pytest.mark.parametrize("proxy", ["l7", "l4"])
def test_plain_uvicorn_loses_requests(proxy: str) -> None:
    result = simulate("uvicorn", proxy)
    assert result.error is None
    lost = failures(result)
    assert sum(lost.values()) > 0
    # What each proxy turns a pod that stopped accepting into:
    assert set(lost) == ({"http_503"} if proxy == "l7" else {"reset"}), lost


def test_envoy_retries_connect_failures_in_l7() -> None:
    settings = demo_settings("uvicorn", proxy="l7", retries=2, before=0.5, after=0.5)
    result = anyio.run(Simulation(settings).run)
    assert result.error is None
    # The pods that stopped accepting refuse Envoy's connections, and Envoy tries again
    # elsewhere (while every pod it knows has gone, the retries fail too).
    assert result.proxy_stats["cx_connect_fail"] > 0
    assert result.proxy_stats["rq_retry"] > 0
