"""Draw the termination timeline of the Kubernetes guide as SVG, from gracekit's default timings.

Run from the repository root:  python docs/diagrams/termination_timeline.py
It writes docs/img/termination-timeline.svg; tests/test_docs_diagram.py checks that the committed
file is what this script draws, so the picture follows the defaults.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from gracekit.drain.timing import GRACE_MARGIN, ShutdownTiming

OUTPUT = Path(__file__).resolve().parents[1] / "img" / "termination-timeline.svg"

SCALE = 28.0  # pixels per second
LEFT = 190  # where t = 0 is drawn; lane labels sit to its left
TOP = 58
LANE = 64  # lane height
BAR = 30
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    label: str
    fill: str
    text: str = "#ffffff"


def x(seconds: float) -> float:
    return LEFT + seconds * SCALE


def text(px: float, py: float, body: str, *, size: int = 13, anchor: str = "start",
         fill: str = "#1f2328", weight: str = "normal") -> str:  # fmt: skip
    return (
        f"<text x='{px:.1f}' y='{py:.1f}' {FONT} font-size='{size}' text-anchor='{anchor}' "
        f"font-weight='{weight}' fill='{fill}'>{escape(body)}</text>"
    )


def span(lane: int, item: Span) -> list[str]:
    top = TOP + lane * LANE + (LANE - BAR) / 2
    width = x(item.end) - x(item.start)
    return [
        f"<rect x='{x(item.start):.1f}' y='{top:.1f}' width='{width:.1f}' height='{BAR}' "
        f"rx='4' fill='{item.fill}'/>",
        text(x(item.start) + width / 2, top + BAR / 2 + 4.5, item.label, anchor="middle",
             fill=item.text),
    ]  # fmt: skip


def marker(seconds: float, label: str, colour: str, *, row: int) -> list[str]:
    """A vertical line across the lanes, labelled above them."""
    bottom = TOP + 3 * LANE
    return [
        f"<line x1='{x(seconds):.1f}' y1='{TOP - 6 - row * 16}' x2='{x(seconds):.1f}' "
        f"y2='{bottom}' stroke='{colour}' stroke-width='2' stroke-dasharray='5 3'/>",
        text(x(seconds), TOP - 10 - row * 16, label, anchor="middle", fill=colour, weight="bold"),
    ]


def draw(timing: ShutdownTiming, hooks: float) -> str:
    delay, drain = timing.delay, timing.drain_timeout
    stop = delay + drain + hooks
    grace = timing.grace_period(hooks=hooks)
    width = int(x(grace) + 60)
    height = TOP + 3 * LANE + 104
    lanes = ("kubelet", "endpoints, proxies", "the app (gracekit)")
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-labelledby='title'>",
        "<title id='title'>Pod termination with gracekit: preStop or SIGTERM at 0 s, "
        f"readiness fails at once, serving for the {delay:g} s delay, drain up to "
        f"{drain:g} s, hooks up to {hooks:g} s, SIGKILL at the {grace} s grace period</title>",
        f"<rect width='{width}' height='{height}' fill='#ffffff'/>",
    ]
    for lane, label in enumerate(lanes):
        middle = TOP + lane * LANE + LANE / 2 + 4.5
        parts.append(text(LEFT - 12, middle, label, anchor="end", weight="bold"))
        if lane:
            y = TOP + lane * LANE
            parts.append(f"<line x1='20' y1='{y}' x2='{width - 20}' y2='{y}' stroke='#d0d7de'/>")
    parts += span(0, Span(0, delay, "preStop hook", "#8c959f"))
    parts += span(0, Span(delay, grace, "waits for the container to exit", "#eaeef2", "#57606a"))
    parts += span(1, Span(0, delay, "catching up", "#bf8700"))
    parts += span(1, Span(delay, grace, "no new traffic reaches the pod", "#eaeef2", "#57606a"))
    parts += span(2, Span(0, delay, "delay", "#0969da"))
    drain_label = "drain: in-flight requests and background work"
    parts += span(2, Span(delay, delay + drain, drain_label, "#1a7f37"))
    parts += span(2, Span(delay + drain, stop, "hooks", "#8250df"))
    parts += span(2, Span(stop, grace, "", "#d0d7de"))
    parts += marker(0, "pod deleted", "#1f2328", row=0)
    parts += marker(delay, "SIGTERM", "#0969da", row=1)
    parts += marker(stop, "exit 0 (at the latest)", "#1a7f37", row=0)
    parts += marker(grace, "SIGKILL", "#cf222e", row=1)
    axis = TOP + 3 * LANE + 14
    parts.append(f"<line x1='{x(0)}' y1='{axis}' x2='{x(grace)}' y2='{axis}' stroke='#57606a'/>")
    for second in range(0, grace + 1):
        tall = second % 5 == 0 or second == grace
        parts.append(
            f"<line x1='{x(second):.1f}' y1='{axis}' x2='{x(second):.1f}' "
            f"y2='{axis + (6 if tall else 3)}' stroke='#57606a'/>"
        )
        if tall:
            parts.append(text(x(second), axis + 19, f"{second} s", size=11, anchor="middle"))
    notes = [
        "With gracekit's preStop endpoint as the hook (without a hook, SIGTERM comes at 0 s and "
        "the app spends the delay itself).",
        f"Readiness answers 503 from 0 s; during the delay the app serves every request, with "
        f"Connection: close; the drain ends as soon as nothing is in flight (at most {drain:g} s).",
        f"terminationGracePeriodSeconds {grace} = delay {delay:g} + drain {drain:g} + "
        f"hooks {hooks:g} + margin {GRACE_MARGIN:g}, counted from the start of the preStop hook.",
    ]
    for row, note in enumerate(notes):
        parts.append(text(20, axis + 44 + row * 18, note, size=12, fill="#57606a"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    timing = ShutdownTiming()
    OUTPUT.write_text(draw(timing, timing.hook_timeout))
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
