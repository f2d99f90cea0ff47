"""The reports (dict, text, chart) from a run built by hand."""

from __future__ import annotations

from pathlib import Path

from gracekit.rollout import plot, report, text
from gracekit.rollout.config import RolloutSettings
from gracekit.rollout.kubelet import Kubelet
from gracekit.rollout.load import Load, Outcome
from gracekit.rollout.pods import Pod, PodCommand, Processes
from gracekit.rollout.simulator import PodRun, RunResult
from gracekit.rollout.termination import Termination
from gracekit.rollout.timeline import Timeline

COMMAND = PodCommand(("server", "--port", "{port}"), {"GRACEKIT_SHUTDOWN_DELAY": "3"})


def ok(at: float, ms: float, version: str = "v1", *, slow: bool = False) -> Outcome:
    return Outcome(at, ms / 1000, "ok", 200, version, slow=slow, keepalive=False)


def failed(at: float, kind: str, status: int = 0) -> Outcome:
    return Outcome(at, 0.001, kind, status, "", slow=False, keepalive=True)


def a_run(tmp_path: Path) -> RunResult:
    """A run of one old pod, terminated at t = 5, and one new pod, with known outcomes."""
    settings = RolloutSettings(command=COMMAND, replicas=1, label="by <hand>")
    timeline = Timeline()
    result = RunResult(settings, timeline, envoy_version="1.40.0", envoy_pid=10, pids=[10, 11])
    for name, version, port in (("v1-1", "v1", 9001), ("v2-1", "v2", 9002)):
        pod = Pod(name, version, port, COMMAND, tmp_path / f"{name}.log", pids=[port])
        kubelet = Kubelet(
            pod,
            settings.kubelet,
            processes=Processes(run_id="x"),
            timeline=timeline,
            on_ready=lambda pod, ready: None,
        )
        result.pods.append(PodRun(pod, kubelet, created=0.0 if version == "v1" else 4.0))
    old = result.pods[0].kubelet
    old.termination = Termination("deleted", started=5.0, sigterm=5.0, exited=8.25, exit_code=0)
    timeline.events.clear()
    timeline.add("v1-1", "ready")
    timeline.add("v1-1", "endpoint-added")
    load = Load(settings.load, port=1, timeline=timeline, max_requests=100)
    load.started, load.stopped = 1.0, 12.0
    load.outcomes = [
        ok(1.0, 2.0),
        ok(2.0, 4.0),
        ok(2.5, 300.0, slow=True),
        ok(5.0, 3.0),  # during
        failed(5.2, "http_503", 503),
        failed(5.3, "reset"),
        failed(5.4, "http_503", 503),
        ok(6.0, 8.0, "v2"),
        ok(11.0, 1.0, "v2"),  # after
    ]
    result.load = load
    result.rollout_started, result.rollout_finished = 4.0, 10.0
    return result


def test_percentile_by_nearest_rank() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert report.percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert report.percentile([5.0], 99) == 5.0


def test_the_report(tmp_path: Path) -> None:
    built = report.build(a_run(tmp_path))
    requests = built["requests"]
    assert requests["total"] == 9
    assert requests["failed"] == 3
    assert requests["failures"] == {"http_503": 2, "reset": 1}
    assert requests["statuses"] == {"200": 6, "503": 2}
    latency = built["latency_ms"]
    assert latency["before"]["requests"] == 3
    assert latency["before"]["short"] == {"count": 2, "p50": 2.0, "p99": 4.0}
    assert latency["before"]["slow"]["p50"] == 300.0
    assert latency["during"]["requests"] == 5
    assert latency["during"]["failed"] == 3
    assert latency["during"]["short"] == {"count": 2, "p50": 3.0, "p99": 8.0}
    assert latency["after"]["requests"] == 1
    assert built["rollout"] == {"started": 4.0, "finished": 10.0, "duration": 6.0}
    old, new = built["pods"]
    assert old["sigterm_to_exit"] == 3.25
    assert old["sigkilled"] is False
    assert old["exit_status"] == 0
    assert new["deleted"] is None
    buckets = built["timeline"]["buckets"]
    assert sum(sum(b["versions"].values()) for b in buckets) == 6
    assert sum(sum(b["failures"].values()) for b in buckets) == 3
    at_5 = next(b for b in buckets if b["t"] == 5.0)
    assert at_5["failures"] == {"http_503": 2, "reset": 1}
    assert at_5["versions"] == {"v1": 1}
    assert built["settings"]["environment"] == {"GRACEKIT_SHUTDOWN_DELAY": "3"}
    assert built["processes"] == {"run": "", "envoy": 10, "pids": [10, 11]}
    report.write_json(built, tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text().startswith("{")


def test_the_text_report(tmp_path: Path) -> None:
    built = report.build(a_run(tmp_path))
    rendered = text.render(built)
    assert rendered.startswith("gracekit rollout: by <hand>")
    assert "requests   9 sent, 3 failed (33.3%)" in rendered
    assert "failed   http 503 x2, reset x1" in rendered
    assert "with GRACEKIT_SHUTDOWN_DELAY=3" in rendered
    assert "3.25 s" in rendered  # SIGTERM to exit
    assert rendered.endswith("FAILED: 3 of 9 requests failed")
    side_by_side = text.comparison([built, {**built, "label": "other"}])
    assert side_by_side.splitlines()[0].split() == ["by", "<hand>", "other"]
    assert "http 503" in side_by_side


def test_the_chart(tmp_path: Path) -> None:
    built = report.build(a_run(tmp_path))
    page = plot.page([built], title="a <title>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;title&gt;</title>" in page
    assert "by &lt;hand&gt;" in page  # labels are escaped
    assert page.count("<svg") == 1
    assert "http 503" in page  # the legend names the failure kinds seen
    assert "rollout starts" in page
    assert "3 of 9 requests failed" in page
    plot.write([built, built], tmp_path / "chart.html")
    assert (tmp_path / "chart.html").read_text().count("<svg") == 2
