"""The Kubernetes guide's termination timeline is the SVG its script draws from the defaults."""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from types import ModuleType

from gracekit import ShutdownTiming
from tests.support.server import ROOT

SCRIPT = ROOT / "docs" / "diagrams" / "termination_timeline.py"
SVG = ROOT / "docs" / "img" / "termination-timeline.svg"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("termination_timeline", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_the_committed_svg_is_what_the_script_draws() -> None:
    drawn = script().draw(ShutdownTiming(), ShutdownTiming().hook_timeout)
    assert SVG.read_text() == drawn, "run: python docs/diagrams/termination_timeline.py"
    root = ET.fromstring(drawn)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ("SIGTERM", "SIGKILL", "delay", "hooks", "32 s"):
        assert label in texts, label


def test_the_picture_follows_the_timings() -> None:
    drawn = script().draw(ShutdownTiming(delay=10, drain_timeout=40), 5.0)
    assert "terminationGracePeriodSeconds 57 = delay 10 + drain 40 + hooks 5 + margin 2" in drawn
    assert ">57 s<" in drawn
