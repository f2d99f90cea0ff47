"""The reports as text: one run (``gracekit rollout``), or runs side by side (``gracekit
demo``). Both read the dict that :func:`gracekit.rollout.report.build` returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["comparison", "failure_summary", "render"]

_KIND_NAMES = {"refused": "refused", "reset": "reset", "timeout": "timeout", "error": "error"}


def _kind(kind: str) -> str:
    return f"http {kind[5:]}" if kind.startswith("http_") else _KIND_NAMES.get(kind, kind)


def failure_summary(report: dict[str, Any]) -> str:
    """``none``, or the failures by kind (``http 503 x120, reset x3``)."""
    failures = report["requests"]["failures"]
    return ", ".join(f"{_kind(k)} x{n}" for k, n in failures.items()) or "none"


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _pair(latency: dict[str, Any]) -> str:
    if not latency["count"]:
        return "-"
    return f"{_num(latency['p50'])} / {_num(latency['p99'])}"


def _header(report: dict[str, Any]) -> list[str]:
    s = report["settings"]
    load = s["load"]
    retries = f"{s['retries']} retries" if s["retries"] else "no retries"
    mode = f"l7 (HTTP routing, {retries})" if s["proxy"] == "l7" else "l4 (TCP proxy)"
    title = "gracekit rollout" + (f": {report['label']}" if report["label"] else "")
    env = " ".join(f"{k}={v}" for k, v in s["environment"].items())
    probes = [f"           {name:<9} {probe or 'none'}" for name, probe in s["probes"].items()]
    return [
        title,
        f"  pods     {s['replicas']} x {s['command']}",
        *([f"           with {env}"] if env else []),
        f"           {s['versions'][0]} -> {s['versions'][1]}, maxSurge 1, maxUnavailable 0",
        f"  kubelet  grace period {s['grace_period']:g} s, preStop {s['prestop']}",
        *probes,
        f"  proxy    Envoy {s['envoy'] or '?'}, {mode}, propagation delay "
        f"{s['propagation_delay']:g} s",
        f"  load     {load['rate']:g} req/s open loop: {load['slow_share']:.0%} "
        f"{load['slow_path']}, the rest {load['path']}; {load['keepalive_share']:.0%} over "
        "keep-alive connections",
    ]


def _status(code: int | None) -> str:
    """An exit status as a shell shows it: 143 for a process that SIGTERM ended."""
    if code is None:
        return "-"
    return str(128 - code) if code < 0 else str(code)


def _pods(report: dict[str, Any]) -> list[str]:
    lines = [
        "pods (times in s from the start of the run)",
        "  name     port  ready  in proxy       deleted  SIGTERM  exited  "
        "SIGTERM->exit  SIGKILL  status  restarts",
    ]
    for pod in report["pods"]:
        added, removed = pod["endpoint_added"], pod["endpoint_removed"]
        proxy = f"{_num(added)}..{_num(removed) if removed is not None else ''}"
        status = _status(pod["exit_status"])
        killed = "yes" if pod["sigkilled"] else "no"
        lines.append(
            f"  {pod['name']:<7} {pod['port']:>5} {_num(pod['ready']):>6}  {proxy:<13}"
            f" {_num(pod['deleted']):>7} {_num(pod['sigterm']):>8} {_num(pod['exited']):>7}"
            f" {_num(pod['sigterm_to_exit'], ' s', 2):>14}  {killed:>7}"
            f"  {status:>6}  {pod['restarts']:>8}"
        )
    return lines


def _versions(report: dict[str, Any]) -> list[str]:
    """Answers per second by version, and failures, from the timeline's buckets."""
    buckets = report["timeline"]["buckets"]
    names = sorted({v for b in buckets for v in b["versions"]})
    per = max(1, round(1.0 / report["timeline"]["bucket"]))
    lines = [
        "versions served (answered requests per second of the load, by version; failed)",
        "  t (s)  " + "".join(f"{name:>7}" for name in names) + "   failed",
    ]
    for i in range(0, len(buckets), per):
        group = buckets[i : i + per]
        counts = [sum(b["versions"].get(name, 0) for b in group) for name in names]
        failed = sum(sum(b["failures"].values()) for b in group)
        start = group[0]["t"]
        lines.append(f"  {start:>5.1f}  " + "".join(f"{c:>7}" for c in counts) + f"   {failed:>6}")
    return lines


def _proxy(stats: dict[str, int]) -> str:
    if not stats:
        return "-"
    names = {
        "cx_total": "connections to pods",
        "cx_connect_fail": "connect failures",
        "rq_total": "requests",
        "rq_5xx": "5xx",
        "rq_retry": "retries",
    }
    return ", ".join(f"{stats[key]} {name}" for key, name in names.items() if key in stats)


def render(report: dict[str, Any]) -> str:
    """The text report of one run."""
    requests, rollout = report["requests"], report["rollout"]
    latency = report["latency_ms"]
    s = report["settings"]["load"]
    total, failed = requests["total"], requests["failed"]
    share = f" ({failed / total:.1%})" if total else ""
    statuses = ", ".join(f"{k} x{v}" for k, v in requests["statuses"].items()) or "none"
    lines = [
        *_header(report),
        "",
        f"requests   {total} sent, {failed} failed{share}",
        f"  failed   {failure_summary(report)}",
        f"  answers  {statuses}",
        f"  Envoy    {_proxy(report['proxy'])}",
        f"rollout    {_num(rollout['duration'], ' s')} (t = {_num(rollout['started'])} .. "
        f"{_num(rollout['finished'])} s)",
        "latency    p50 / p99 ms, answered requests     before          during",
        f"  short    {s['path']:<33}{_pair(latency['before']['short']):>12}"
        f"{_pair(latency['during']['short']):>16}",
        f"  slow     {s['slow_path']:<33}{_pair(latency['before']['slow']):>12}"
        f"{_pair(latency['during']['slow']):>16}",
        "",
        *_pods(report),
        "",
        *_versions(report),
        "",
    ]
    if report["error"]:
        lines.append(f"ERROR: the simulation did not finish: {report['error']}")
    elif failed:
        lines.append(f"FAILED: {failed} of {total} requests failed")
    else:
        lines.append(f"OK: none of {total} requests failed")
    return "\n".join(lines)


def comparison(reports: Sequence[dict[str, Any]]) -> str:
    """Runs side by side: one column each, the same rows."""

    def row(name: str, values: Sequence[str]) -> str:
        return f"  {name:<30}" + "".join(f"{v:>22}" for v in values)

    def maximum(report: dict[str, Any], key: str) -> float | None:
        values = [p[key] for p in report["pods"] if p[key] is not None]
        return max(values) if values else None

    lines = [row("", [r["label"] or f"run {i + 1}" for i, r in enumerate(reports)])]
    lines += [
        row("requests", [str(r["requests"]["total"]) for r in reports]),
        row("failed", [str(r["requests"]["failed"]) for r in reports]),
    ]
    kinds = sorted({k for r in reports for k in r["requests"]["failures"]})
    for kind in kinds:
        lines.append(
            row(f"  {_kind(kind)}", [str(r["requests"]["failures"].get(kind, 0)) for r in reports])
        )
    lines += [
        row("p50 / p99 ms before", [_pair(r["latency_ms"]["before"]["short"]) for r in reports]),
        row("p50 / p99 ms during", [_pair(r["latency_ms"]["during"]["short"]) for r in reports]),
        row("rollout duration", [_num(r["rollout"]["duration"], " s") for r in reports]),
        row(
            "longest SIGTERM->exit",
            [_num(maximum(r, "sigterm_to_exit"), " s", 2) for r in reports],
        ),
        row("pods SIGKILLed", [str(sum(p["sigkilled"] for p in r["pods"])) for r in reports]),
        row("restarts", [str(sum(p["restarts"] for p in r["pods"])) for r in reports]),
    ]
    errors = [f"{r['label']}: {r['error']}" for r in reports if r["error"]]
    return "\n".join(lines + [f"ERROR {e}" for e in errors])
