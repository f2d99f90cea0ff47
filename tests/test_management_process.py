"""The management port in a real ``gracekit run`` process: it answers through the shutdown and
closes last, and a flood of probes neither stops readiness answering nor grows memory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.flood import flood
from tests.support.server import EXAMPLES, TEST_APPS, free_port, run_uvicorn, wait_until

SLACK = 2.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def managed(port: int, **env: str):  # type: ignore[no-untyped-def]
    return run_uvicorn(
        "managed:app",
        app_dir=TEST_APPS,
        launcher="gracekit",
        args=["--management-port", str(port)],
        env=env,
        ready_path="/",
    )


def test_it_answers_through_the_shutdown_and_closes_last() -> None:
    port = free_port()
    management = f"http://127.0.0.1:{port}"
    delay = 2.0  # room, on a busy machine, to look at both ports during it
    with managed(port, FAIL_CHECK="1", SHUTDOWN_DELAY=str(delay)) as server:
        assert wait_until(
            lambda: httpx.get(management + "/health/ready").status_code == 200, timeout=10
        )
        assert httpx.get(server.url + "/health/ready").status_code == 404, "not on the app"
        verbose = httpx.get(management + "/health/ready?verbose").text
        assert "hunter2-fake" in verbose, "details on the management port, as configured"
        assert "http_requests_total" in httpx.get(management + "/metrics").text
        # In flight across the delay and one second into the drain: the app's port is closed
        # then, the management port still open.
        pool = ThreadPoolExecutor(1)
        slow = pool.submit(
            httpx.get, f"{server.url}/slow?ms={int(delay * 1000) + 1000}", timeout=30
        )
        assert wait_until(lambda: _in_flight(management) >= 1, timeout=5)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert wait_until(
            lambda: httpx.get(management + "/health/ready").status_code == 503, timeout=2
        )
        assert httpx.get(management + "/health/live").status_code == 200
        assert httpx.get(server.url + "/").text == "hello", "the delay: still serving"
        # Once the app's port closes, the management port still answers.
        assert wait_until(lambda: not _answers(server.url + "/"), timeout=delay + SLACK)
        assert httpx.get(management + "/health/live").status_code == 200
        assert slow.result(timeout=10).text == "slept"
        pool.shutdown()
        assert server.process.wait(timeout=delay + 2 + SLACK) == 0, server.log()
        assert time.monotonic() - sent < delay + 2 + SLACK
        assert not _answers(management + "/health/live"), "closed with the process"


def _in_flight(management: str) -> float:
    for line in httpx.get(management + "/metrics").text.splitlines():
        if line.startswith("gracekit_requests_in_flight "):
            return float(line.split()[1])
    return 0.0


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_a_flood_of_probes_leaves_readiness_answering_and_memory_flat() -> None:
    port = free_port()
    with managed(port) as server:
        management = f"http://127.0.0.1:{port}"
        assert wait_until(
            lambda: httpx.get(management + "/health/ready").status_code == 200, timeout=10
        )
        asyncio.run(flood(port, 50, 40))  # warm-up: 2,000
        before = rss_mb(server.process.pid)
        latencies: list[float] = []

        async def flood_and_probe() -> dict[int, int]:
            flooding = asyncio.ensure_future(flood(port, 50, 200))  # 10,000
            async with httpx.AsyncClient() as http:
                while not flooding.done():
                    started = time.monotonic()
                    assert (await http.get(management + "/health/ready")).status_code == 200
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.05)
            return await flooding

        statuses = asyncio.run(flood_and_probe())
        after = rss_mb(server.process.pid)
        assert statuses == {200: 10_000}
        assert latencies, "probed during the flood"
        assert max(latencies) < 2.0, max(latencies)
        assert after - before < 5.0, f"RSS {before:.1f} -> {after:.1f} MB"
        assert httpx.get(server.url + "/").text == "hello", "the app kept serving"


def _listening_address(port: int) -> str | None:
    """The local address a socket listening on *port* is bound to, from /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                return address
    return None


def test_it_binds_where_the_app_binds_and_a_busy_port_fails_startup() -> None:
    port = free_port()
    with run_uvicorn(
        "minimal:app", launcher="gracekit", args=["--management-port", str(port)], ready_port=port
    ) as server:
        assert _listening_address(port) == "0100007F", "127.0.0.1, as --host"
        assert f"management port 127.0.0.1:{port}" in server.log()
        # A second process asking for the same port is refused, not given half the probes.
        second = subprocess.run(
            [sys.executable, "-m", "gracekit", "run", "minimal:app", "--app-dir", str(EXAMPLES),
             "--port", str(free_port()), "--management-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"the management port 127.0.0.1:{port} is in use" in second.stdout + second.stderr


def test_gunicorn_workers_share_one_management_socket() -> None:
    port = free_port()
    with run_uvicorn(
        "managed:app",
        app_dir=TEST_APPS,
        launcher="gunicorn",
        args=["--workers", "2", "--no-control-socket"],
        env={"GRACEKIT_MANAGEMENT_PORT": str(port)},
        ready_port=port,
    ) as server:
        assert wait_until(lambda: server.log().count("Booting worker") >= 2, timeout=20)
        started = "Application startup complete"
        assert wait_until(lambda: server.log().count(started) >= 2, timeout=20)
        assert [httpx.get(f"http://127.0.0.1:{port}/health/live").status_code] * 10 == [200] * 10
        log = server.log()
        assert "shared by the workers" in log
        assert "in use" not in log, log
        assert "Worker exiting" not in log, log
        # SIGTERM, as the kubelet stops it: the workers drain and exit before the master. (On
        # the SIGINT of leaving the block, the master sends uvicorn's workers SIGQUIT, which
        # they ignore; it kills them 30 s later, and the workers outlived a master killed first.)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0, server.log()
        assert not _answers(f"http://127.0.0.1:{port}/health/live"), "a worker outlived the master"


def _gracekit_run_two_workers(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gracekit", "run", "managed:app", "--app-dir",
               str(TEST_APPS), "--port", str(free_port()), "--workers", "2", *args]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRACEKIT_")}
    # Bounded: a supervisor restarting its workers in a loop fails the test by timing out.
    return subprocess.run(
        command, env={**environ, **env}, capture_output=True, text=True, timeout=30
    )


def test_several_uvicorn_workers_refuse_a_management_port_naming_gunicorn() -> None:
    port = free_port()
    gunicorn = f"GRACEKIT_MANAGEMENT_PORT={port} gunicorn -k gracekit.server.gunicorn.Worker -w 2"
    # From the flag or the environment: refused before any worker starts.
    for refused in (
        _gracekit_run_two_workers("--management-port", str(port)),
        _gracekit_run_two_workers(GRACEKIT_MANAGEMENT_PORT=str(port)),
    ):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith("gracekit run: 2 uvicorn worker processes cannot share")
        assert gunicorn in refused.stderr
        assert "Started parent process" not in refused.stdout + refused.stderr
    # From the code: each worker refuses before binding it, so none serves; the supervisor
    # stops once one has failed to start.
    from_code = _gracekit_run_two_workers(CODE_PORT=str(port))
    output = from_code.stdout + from_code.stderr
    failed = output.count("Application startup failed")
    assert failed >= 1, output
    assert output.count(gunicorn) == failed, "said once by each worker that failed"
    assert "in use" not in output
    assert "Application startup complete" not in output, "a worker started serving"
