"""The plot: an HTML page with one inline SVG chart per run, no dependency.

Top: the outcome of the requests over time, stacked per half-second (answers by the version
that served them, failures by kind on top), with the rollout's window shaded. Below: one lane
per pod: starting, ready but not yet in the proxy, in the proxy, terminating (from deletion
to exit, with SIGTERM and SIGKILL marked). Where a terminating lane still overlaps "in the
proxy", the proxy sends traffic to a pod that is shutting down: the race.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .text import failure_summary

__all__ = ["page", "svg", "write"]

_WIDTH, _LEFT, _RIGHT = 980, 70, 20
_CHART_TOP, _CHART_HEIGHT = 56, 200
_LANE, _LANE_GAP = 16, 6
_VERSION_COLORS = ("#4e79a7", "#59a14f", "#b07aa1", "#9c755f")
_FAILURE_COLORS = {"refused": "#7f0000", "reset": "#d62728", "timeout": "#9467bd"}
_HTTP_COLOR, _OTHER_COLOR, _TERMINATING = "#ff7f0e", "#8c564b", "#e15759"
_DEFS = (
    '<defs><pattern id="gone" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde0e0"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="3"/></pattern></defs>'
)
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 28px 0 4px; }
p.summary { margin: 0 0 8px; } p.summary b.bad { color: #c00; } p.summary b.good { color: #070; }
svg { background: #fff; border: 1px solid #ddd; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def _failure_color(kind: str) -> str:
    if kind.startswith("http_"):
        return _HTTP_COLOR
    return _FAILURE_COLORS.get(kind, _OTHER_COLOR)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Scale:
    def __init__(self, end: float) -> None:
        self.end = max(end, 1.0)

    def x(self, t: float) -> float:
        return _LEFT + (_WIDTH - _LEFT - _RIGHT) * max(0.0, min(t, self.end)) / self.end


def _attrs(attrs: Mapping[str, object]) -> str:
    return "".join(f' {k.replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items())


def _tip(title: str) -> str:
    return f"<title>{_esc(title)}</title>" if title else ""


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str = "", **extra: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
        f'fill="{fill}"{_attrs(extra)}>{_tip(title)}</rect>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, title: str = "") -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{stroke}">{_tip(title)}</line>'
    )


def _text(x: float, y: float, content: str, title: str = "", **extra: object) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{_attrs(extra)}>{_esc(content)}{_tip(title)}</text>'


def _chart(report: dict[str, Any], scale: _Scale, versions: Sequence[str]) -> list[str]:
    buckets = report["timeline"]["buckets"]
    width = report["timeline"]["bucket"]
    top = max([sum(b["versions"].values()) + sum(b["failures"].values()) for b in buckets] + [1])
    bottom = _CHART_TOP + _CHART_HEIGHT
    middle = _CHART_TOP + _CHART_HEIGHT / 2
    parts = []
    for b in buckets:
        x, w = scale.x(b["t"]), scale.x(b["t"] + width) - scale.x(b["t"]) - 1
        y = float(bottom)
        tip = f"t = {b['t']:g}..{b['t'] + width:g} s: " + ", ".join(
            [f"{v} {n}" for v, n in b["versions"].items()]
            + [f"{k} {n}" for k, n in b["failures"].items()]
        )
        stack = [(n, _version_color(versions, v)) for v, n in b["versions"].items()]
        stack += [(n, _failure_color(k)) for k, n in b["failures"].items()]
        for count, color in stack:
            h = _CHART_HEIGHT * count / top
            y -= h
            parts.append(_rect(x, y, w, h, color, tip))
    return [
        *parts,
        _line(_LEFT, bottom, _WIDTH - _RIGHT, bottom, "#999"),
        _text(_LEFT - 6, _CHART_TOP + 10, str(top), text_anchor="end"),
        _text(_LEFT - 6, bottom, "0", text_anchor="end"),
        _text(
            12,
            middle,
            f"requests per {width:g} s",
            text_anchor="middle",
            transform=f"rotate(-90 12 {middle})",
        ),
    ]


def _rollout_marks(report: dict[str, Any], scale: _Scale, bottom: float) -> list[str]:
    """Dashed lines at the start and the end of the rollout, across the chart and the lanes."""
    rollout = report["rollout"]
    if rollout["started"] is None:
        return []
    marks = [(rollout["started"], "rollout starts")]
    if rollout["finished"] is not None:
        marks.append((rollout["finished"], "rollout done"))
    parts = []
    for t, label in marks:
        x = scale.x(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_CHART_TOP - 4}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'stroke="#555" stroke-dasharray="4 3"><title>{label} at {t:g} s</title></line>'
        )
        parts.append(_text(x + 3, _CHART_TOP - 6, label))
    return parts


def _version_color(versions: Sequence[str], version: str) -> str:
    index = versions.index(version) if version in versions else len(_VERSION_COLORS) - 1
    return _VERSION_COLORS[index % len(_VERSION_COLORS)]


def _lane(pod: dict[str, Any], scale: _Scale, color: str, y: float) -> list[str]:
    name = pod["name"]
    end = pod["exited"] if pod["exited"] is not None else scale.end
    ready = pod["ready"] if pod["ready"] is not None else end
    added = pod["endpoint_added"]

    def span(start: float, stop: float, fill: str, title: str, **extra: str) -> str:
        return _rect(scale.x(start), y, scale.x(stop) - scale.x(start), _LANE, fill, title, **extra)

    parts = [
        _text(_LEFT - 6, y + 12, name, text_anchor="end"),
        span(pod["created"], ready, "#ddd", f"{name}: starting"),
    ]
    if pod["ready"] is not None and added is not None:
        parts.append(
            span(ready, added, color, f"{name}: ready, not in the proxy yet", opacity="0.35")
        )
    if added is not None:
        removed = pod["endpoint_removed"] if pod["endpoint_removed"] is not None else scale.end
        parts.append(span(added, removed, color, f"{name}: in the proxy, {added:g}..{removed:g} s"))
        exited = pod["exited"]
        if exited is not None and exited < removed:
            parts.append(
                span(
                    exited,
                    removed,
                    "url(#gone)",
                    f"{name}: in the proxy, but its container "
                    f"has exited ({exited:g}..{removed:g} s)",
                )
            )
    if pod["deleted"] is not None:
        x0, x1 = scale.x(pod["deleted"]), scale.x(end)
        title = (
            f"{name}: terminating, {pod['deleted']:g}..{end:g} s "
            f"(SIGTERM to exit: {pod['sigterm_to_exit']} s)"
        )
        parts.append(_rect(x0, y + _LANE - 5, x1 - x0, 5, _TERMINATING, title))
    if pod["sigterm"] is not None:
        x = scale.x(pod["sigterm"])
        parts.append(_line(x, y - 2, x, y + _LANE + 2, "#000", f"SIGTERM at {pod['sigterm']:g} s"))
    if pod["sigkilled"] and pod["exited"] is not None:
        parts.append(
            _text(scale.x(pod["exited"]), y + 12, "✕", "SIGKILL", text_anchor="middle", fill="#c00")
        )
    return parts


def _axis(scale: _Scale, y: float) -> list[str]:
    step = 1 if scale.end <= 20 else 2 if scale.end <= 40 else 5 if scale.end <= 100 else 20
    parts = [_line(_LEFT, y, _WIDTH - _RIGHT, y, "#999")]
    t = 0
    while t <= scale.end:
        x = scale.x(t)
        parts.append(_line(x, y, x, y + 4, "#999"))
        parts.append(_text(x, y + 16, str(t), text_anchor="middle"))
        t += step
    parts.append(
        _text(_WIDTH - _RIGHT, y + 30, "seconds from the start of the run", text_anchor="end")
    )
    return parts


def _legend(versions: Sequence[str], kinds: Sequence[str]) -> list[str]:
    items = [(f"answered by {v}", _version_color(versions, v), "") for v in versions]
    items += [(kind.replace("_", " "), _failure_color(kind), "") for kind in kinds]
    items += [("starting", "#ddd", ""), ("ready, not yet in the proxy", _VERSION_COLORS[0], "0.35")]
    items += [("terminating", _TERMINATING, ""), ("in the proxy, container gone", "url(#gone)", "")]
    parts, x = [], float(_LEFT)
    for label, color, opacity in items:
        parts.append(_rect(x, 14, 10, 10, color, **({"opacity": opacity} if opacity else {})))
        parts.append(_text(x + 14, 23, label))
        x += 22 + 6.2 * len(label)
    return parts


def _end(report: dict[str, Any]) -> float:
    """The last moment the chart of *report* shows: its last event or request."""
    width = float(report["timeline"]["bucket"])
    moments = [float(e["at"]) for e in report["events"]]
    moments += [float(b["t"]) + width for b in report["timeline"]["buckets"]]
    return max([*moments, 1.0])


def svg(report: dict[str, Any], *, end: float | None = None) -> str:
    """One run's chart, its time axis up to *end* seconds (default: the run's own end)."""
    buckets = report["timeline"]["buckets"]
    versions = list(report["settings"]["versions"])
    versions += sorted({v for b in buckets for v in b["versions"]} - set(versions))
    kinds = sorted({k for b in buckets for k in b["failures"]})
    scale = _Scale(_end(report) if end is None else end)
    lanes_top = _CHART_TOP + _CHART_HEIGHT + 16
    axis_y = lanes_top + len(report["pods"]) * (_LANE + _LANE_GAP) + 4
    height = axis_y + 40
    parts = [
        *_legend(versions, kinds),
        *_chart(report, scale, versions),
        *(
            part
            for i, pod in enumerate(report["pods"])
            for part in _lane(
                pod,
                scale,
                _version_color(versions, pod["version"]),
                lanes_top + i * (_LANE + _LANE_GAP),
            )
        ),
        *_axis(scale, axis_y),
        *_rollout_marks(report, scale, axis_y),
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}">{_DEFS}' + "".join(parts) + "</svg>"
    )


def _summary(report: dict[str, Any]) -> str:
    requests = report["requests"]
    failed = requests["failed"]
    if failed:
        verdict = (
            f'<b class="bad">{failed} of {requests["total"]} requests failed</b> '
            f"({_esc(failure_summary(report))})"
        )
    else:
        verdict = f'<b class="good">none of {requests["total"]} requests failed</b>'

    s = report["settings"]
    return (
        f'<p class="summary">{verdict}; {s["replicas"]} pods, {_esc(s["proxy"])} proxy, '
        f"propagation delay {s['propagation_delay']:g} s, grace period {s['grace_period']:g} s.<br>"
        f"<code>{_esc(s['command'])}</code></p>"
    )


def page(reports: Sequence[dict[str, Any]], *, title: str = "gracekit rollout") -> str:
    """An HTML page with the chart of each report, all on the same time axis."""
    end = max((_end(report) for report in reports), default=1.0)
    sections = []
    for report in reports:
        heading = report["label"] or "rollout"
        error = f"<p><b>ERROR:</b> {_esc(report['error'])}</p>" if report["error"] else ""
        sections.append(f"<h2>{_esc(heading)}</h2>{_summary(report)}{error}{svg(report, end=end)}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{_esc(title)}</h1>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write(
    reports: Sequence[dict[str, Any]], path: Path, *, title: str = "gracekit rollout"
) -> None:
    """Write the page of *reports* to *path*."""
    path.write_text(page(reports, title=title), encoding="utf-8")
