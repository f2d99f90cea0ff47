"""``gracekit rollout`` leaves no process behind: after a run, after an error, after a signal.

Each run's processes carry ``GRACEKIT_ROLLOUT_RUN=<id>`` in their environment, so besides the
PIDs the simulator reports, the tests look through /proc for anything of the run still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gracekit.rollout.demo import DEMO_APP
from gracekit.rollout.pods import RUN_VARIABLE
from tests.support.server import ROOT, TEST_APPS, stop, wait_until

pytestmark = pytest.mark.timeout(90)

TARGET = f"{sys.executable} {TEST_APPS / 'pod_target.py'} {{port}}"
QUICK = ["--replicas", "2", "--rate", "50", "--before", "0.5", "--after", "0.5"]


def alive(pid: int) -> bool:
    """Whether *pid* is a live process (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def leftovers(run_id: str) -> list[int]:
    """The live processes whose environment says they belong to the run *run_id*."""
    marker = f"{RUN_VARIABLE}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker in environ and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


_STARTED: list[tuple[subprocess.Popen[bytes], Path]] = []


def rollout(args: Sequence[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gracekit", "rollout", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )
    _STARTED.append((process, stderr))
    return process, stderr


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Whatever a failing test left running: stopped the way a user would (SIGINT, so the
    simulator cleans up), and what is left of its run killed, so one failure leaves no Envoy
    or pod behind to disturb the rest of the suite."""
    yield
    while _STARTED:
        process, stderr = _STARTED.pop()
        stop(process)
        run_id = re.search(rf"{RUN_VARIABLE}=(\w+)", stderr.read_text(errors="replace"))
        if run_id is not None:
            for pid in leftovers(run_id.group(1)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def assert_all_gone(report: dict[str, object]) -> None:
    processes = report["processes"]
    assert isinstance(processes, dict)
    pids = processes["pids"]
    assert processes["envoy"] in pids
    assert len(pids) >= 3  # Envoy and the pods, at least
    assert [pid for pid in pids if alive(pid)] == []
    assert leftovers(processes["run"]) == []


def test_nothing_is_left_after_a_run(tmp_path: Path) -> None:
    process, stderr = rollout(
        ["--cmd", TARGET, *QUICK, "--json", str(tmp_path / "r.json")], tmp_path
    )
    # This pod stops at once on SIGTERM: some requests may fail (exit status 1), but the
    # simulation runs to its end.
    assert process.wait(timeout=60) in (0, 1), stderr.read_text()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["error"] is None
    assert len(report["pods"]) == 4
    assert_all_gone(report)


def test_nothing_is_left_after_an_error(tmp_path: Path) -> None:
    # The new version crashes at startup: the rollout cannot progress.
    args = ["--cmd", TARGET, "--env", "CRASH_VERSION=v2", "--progress-deadline", "2", *QUICK]
    process, stderr = rollout([*args, "--json", str(tmp_path / "r.json")], tmp_path)
    assert process.wait(timeout=60) == 2, stderr.read_text()
    report = json.loads((tmp_path / "r.json").read_text())
    assert "progress deadline" in report["error"]
    assert "crashes at startup" in report["error"]  # the end of the pod's log is quoted
    assert next(p["restarts"] for p in report["pods"] if p["version"] == "v2") >= 1
    assert_all_gone(report)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_nothing_is_left_after_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    # gracekit pods take their 3 s delay after SIGTERM: the simulator must not wait for them.
    args = ["--app", DEMO_APP, "--factory", "--env", "GRACEKIT_SHUTDOWN_DELAY=3"]
    process, stderr = rollout([*args, "--replicas", "2", "--before", "0.5"], tmp_path)
    # Stop it in the middle of the rollout: an old pod terminating, a new one running.
    assert wait_until(lambda: "sigterm" in stderr.read_text(), timeout=30), stderr.read_text()
    log = stderr.read_text()
    run_id = re.search(rf"{RUN_VARIABLE}=(\w+)", log)
    pids = [int(pid) for pid in re.findall(r"(?:started|envoy): pid (\d+)", log)]
    assert run_id is not None
    assert len(pids) >= 4  # Envoy, two old pods, a new one
    assert all(alive(pid) for pid in pids[1:3])  # the load is running on them
    process.send_signal(signum)
    assert process.wait(timeout=15) == 128 + signum
    assert f"stopped by {signum.name}" in stderr.read_text()
    assert [pid for pid in pids if alive(pid)] == []
    assert leftovers(run_id.group(1)) == []
