"""The load generator: keep N keep-alive connections busy on one URL for a while, return a Sample.

:class:`WrkLoad` runs wrk with a small Lua script that counts statuses and prints the figures
from wrk's own latency histogram: it costs the machine little per request, and its latencies
are not its own event loop's. :func:`make_load` finds wrk, or says how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Protocol

from .stats import Sample

REQUEST_TIMEOUT_S = 5  # a request slower than this counts as an error, not a latency
WRK_MISSING = (
    "the benchmarks load their servers with wrk, which is not on PATH; install it with "
    "'apt-get install -y wrk' (Debian, Ubuntu), 'brew install wrk' (macOS), or build it from "
    "https://github.com/wg/wrk"
)


class Load(Protocol):
    """Something that loads a URL for *duration* seconds and says what it saw."""

    name: str  # printed in the report, e.g. "wrk 4.1.0 [epoll]"

    def run(self, url: str, duration: float) -> Sample: ...


def make_load(*, connections: int, work_dir: Path) -> Load:
    """wrk on *connections* keep-alive connections, its script in *work_dir*.

    Raises RuntimeError, saying how to install wrk, when wrk is not on PATH.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError(WRK_MISSING)
    return WrkLoad(wrk, connections=connections, work_dir=work_dir)


# Counts statuses per thread, then prints the figures WrkLoad parses, one line each.
WRK_SCRIPT = """\
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("gracekit-bench %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout))
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("gracekit-bench-status %d %d\\n", status, count))
    end
  end
end
"""


class WrkLoad:
    """wrk with *threads* threads (one by default: on a 2-core machine the server needs the
    other core) and *connections* connections; the Lua script goes into *work_dir*."""

    def __init__(self, wrk: str, *, connections: int, work_dir: Path, threads: int = 1) -> None:
        self.wrk = wrk
        self.connections = connections
        self.threads = threads
        self.script = work_dir / "gracekit-bench.lua"
        self.script.write_text(WRK_SCRIPT)
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        self.name = (version.stdout or version.stderr).split(" Copyright")[0].strip() or "wrk"

    def run(self, url: str, duration: float) -> Sample:
        """Load *url* for *duration* seconds, rounded to whole seconds (at least one)."""
        command = [
            self.wrk, f"-t{self.threads}", f"-c{self.connections}",
            f"-d{max(1, round(duration))}s", f"--timeout={REQUEST_TIMEOUT_S}s",
            "-s", str(self.script), url,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=duration + 30
        )
        figures, statuses = None, Counter[int]()
        for line in done.stdout.splitlines():
            words = line.split()
            if words[:1] == ["gracekit-bench"]:
                figures = [int(word) for word in words[1:]]
            elif words[:1] == ["gracekit-bench-status"]:
                statuses[int(words[1])] += int(words[2])
        if done.returncode != 0 or figures is None:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        requests, duration_us, p50_us, p99_us, *errors = figures
        return Sample(
            requests=requests,
            seconds=duration_us / 1e6,
            p50_ms=p50_us / 1000,
            p99_ms=p99_us / 1000,
            statuses=dict(statuses),
            errors={
                k: n
                for k, n in zip(("connect", "read", "write", "timeout"), errors, strict=True)
                if n
            },
        )
