"""The termination sequence in real servers, with real signals and real clients."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.server import TEST_APPS, Server, run_uvicorn, wait_until

SLACK = 2.0  # seconds of slack on every "exits by" bound, for a noisy shared machine


@contextmanager
def drainable(
    tmp_path: Path, launcher: str = "uvicorn", *, args: Sequence[str] = (), **settings: str
) -> Iterator[tuple[Server, Path]]:
    events = tmp_path / "events.txt"
    env = {"SHUTDOWN_DELAY": "1", "DRAIN_TIMEOUT": "3", "HOOK_TIMEOUT": "1", **settings}
    env["EVENTS_FILE"] = str(events)
    with run_uvicorn(
        "drainable:app",
        app_dir=TEST_APPS,
        env=env,
        ready_path="/health/ready",
        launcher=launcher,
        args=args,
    ) as server:
        yield server, events


def exit_after(server: Server, sig: signal.Signals = signal.SIGTERM) -> float:
    """Send *sig* and return the moment it was sent."""
    sent = time.monotonic()
    server.process.send_signal(sig)
    return sent


def wait_exit(server: Server, timeout: float) -> int:
    try:
        return server.process.wait(timeout=timeout)
    except Exception as exc:
        raise AssertionError(f"no exit within {timeout} s:\n{server.log()}") from exc


def wait_in_flight(server: Server, count: int, timeout: float = 10) -> None:
    """Wait until the server counts at least *count* requests in flight."""

    def arrived() -> bool:
        return int(httpx.get(server.url + "/inflight", timeout=5).text) >= count

    assert wait_until(arrived, timeout=timeout), f"{count} requests never arrived"


def wait_not_ready(server: Server) -> None:
    assert wait_until(lambda: httpx.get(server.url + "/health/ready").status_code == 503, timeout=5)


def events_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def in_background(
    pool: ThreadPoolExecutor, url: str, timeout: float = 30
) -> Future[httpx.Response]:
    return pool.submit(httpx.get, url, timeout=timeout)


@pytest.mark.parametrize("launcher", ["uvicorn", "gracekit"])
def test_delay_keeps_serving_with_connection_close(tmp_path: Path, launcher: str) -> None:
    with drainable(tmp_path, launcher, SHUTDOWN_DELAY="2") as (server, _):
        with httpx.Client(base_url=server.url, timeout=5) as keep_alive:
            assert keep_alive.get("/").headers.get("connection") != "close"
            sent = exit_after(server)
            assert wait_until(
                lambda: httpx.get(server.url + "/health/ready").status_code == 503, timeout=1
            )
            served = 0
            while time.monotonic() - sent < 1.5:
                response = keep_alive.get("/")  # reuses, then replaces, its pooled connection
                assert response.status_code == 200
                assert response.headers["connection"] == "close"
                assert httpx.get(server.url + "/health/live").status_code == 200
                assert httpx.get(server.url + "/health/ready").status_code == 503
                served += 1
            assert served >= 3
        status = wait_exit(server, 2 + 3 + SLACK)
        elapsed = time.monotonic() - sent
        assert status == 0, server.log()
        assert 2.0 <= elapsed < 2 + SLACK
        assert "Finished server process" in server.log()


@pytest.mark.parametrize("launcher", ["uvicorn", "gracekit"])
def test_in_flight_request_completes(tmp_path: Path, launcher: str) -> None:
    with (
        drainable(tmp_path, launcher, DRAIN_TIMEOUT="5") as (server, events),
        ThreadPoolExecutor(2) as pool,
    ):
        pending = in_background(pool, server.url + "/slow?ms=2000")
        wait_in_flight(server, 1)
        sent = exit_after(server)
        response = pending.result(timeout=10)
        assert (response.status_code, response.text) == (200, "slept 2000 ms")
        assert wait_exit(server, 1 + 5 + SLACK) == 0
        assert time.monotonic() - sent < 2.0 + SLACK
        assert events_of(events)[-2:] == ["hook second_registered", "hook first_registered"]


def test_websocket_gets_going_away(tmp_path: Path) -> None:
    with drainable(tmp_path) as (server, events):
        with ws_connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
            ws.send("ping")
            assert ws.recv(timeout=5) == "ping"
            sent = exit_after(server)
            ws.send("still here during the delay")
            assert ws.recv(timeout=5) == "still here during the delay"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
            assert time.monotonic() - sent >= 1.0, "closed only once the delay was over"
        assert wait_exit(server, 1 + 3 + SLACK) == 0
        assert "websocket closed 1001" in events_of(events)


@pytest.mark.parametrize(("launcher", "expected"), [("uvicorn", 0), ("gracekit", 3)])
def test_request_longer_than_drain_gets_503(tmp_path: Path, launcher: str, expected: int) -> None:
    with (
        drainable(tmp_path, launcher, DRAIN_TIMEOUT="1.5") as (server, _),
        ThreadPoolExecutor(2) as pool,
    ):
        long = in_background(pool, server.url + "/slow?ms=30000")
        stream = pool.submit(_read_stream, server.url + "/stream?n=200")
        wait_in_flight(server, 2)
        sent = exit_after(server)
        response = long.result(timeout=15)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["title"] == "Service Unavailable"
        status = wait_exit(server, 1 + 1.5 + SLACK)
        assert time.monotonic() - sent < 1 + 1.5 + SLACK
        assert status == expected, server.log()
        chunks, error = stream.result(timeout=5)
        assert 0 < chunks < 200, "a started stream ends early at the deadline"
        assert error is not None
        assert "drain deadline reached" in server.log() or launcher == "uvicorn"


@pytest.mark.parametrize(("launcher", "expected"), [("uvicorn", 0), ("gracekit", 3)])
def test_deadlines_yield_to_the_drain_deadline(
    tmp_path: Path, launcher: str, expected: int
) -> None:
    with (
        drainable(tmp_path, launcher, DRAIN_TIMEOUT="1.5", DEADLINE="60") as (server, _),
        ThreadPoolExecutor(3) as pool,
    ):
        long = in_background(pool, server.url + "/slow?ms=30000")
        budgeted = pool.submit(
            httpx.get,
            server.url + "/slow?ms=30000",
            headers={"x-gracekit-budget-ms": "1200"},
            timeout=30,
        )
        watched = in_background(pool, server.url + "/budget?ms=1600")
        wait_in_flight(server, 3)
        sent = exit_after(server)
        # The caller's 1.2 s budget ends before the drain deadline: that one is its own, 504.
        own = budgeted.result(timeout=15)
        assert own.status_code == 504, own.text
        assert own.json()["budget_s"] == 1.2
        # The 60 s deadline does not outlast the drain: cut at its deadline, 503 + Retry-After.
        cut = long.result(timeout=15)
        cut_at = time.monotonic() - sent
        assert cut.status_code == 503
        assert cut.headers["retry-after"] == "1"
        assert 1 + 1.5 - 0.5 < cut_at < 1 + 1.5 + SLACK
        # A handler still running once the drain starts sees the drain's budget, not its 60 s.
        left = float(watched.result(timeout=15).text)
        assert 0 < left <= 1.5
        assert wait_exit(server, 1 + 1.5 + SLACK) == expected, server.log()
        assert time.monotonic() - sent < 1 + 1.5 + SLACK


def _read_stream(url: str) -> tuple[int, Exception | None]:
    chunks = 0
    try:
        with httpx.stream("GET", url, timeout=15) as response:
            for _ in response.iter_lines():
                chunks += 1
    except httpx.HTTPError as exc:
        return chunks, exc
    return chunks, None


def test_sigterm_during_the_hooks_changes_nothing(tmp_path: Path) -> None:
    with drainable(tmp_path, "gracekit", HANG_HOOK="1", HOOK_TIMEOUT="1.5") as (server, events):
        exit_after(server)
        assert wait_until(lambda: "hook second_registered" in events_of(events), timeout=5)
        server.process.send_signal(signal.SIGTERM)  # while the hanging hook runs
        status = wait_exit(server, 1.5 * 2 + SLACK)
        assert status == 4, f"exit {status}: the signal reached the server\n{server.log()}"
        assert events_of(events)[-1] == "hook first_registered"


def test_hooks_once_in_reverse_order_even_with_two_sigterms(tmp_path: Path) -> None:
    with drainable(tmp_path, "gracekit", HANG_HOOK="1", HOOK_TIMEOUT="0.5") as (server, events):
        sent = exit_after(server)
        wait_not_ready(server)
        server.process.send_signal(signal.SIGTERM)  # a duplicate: must change nothing
        status = wait_exit(server, 1 + 3 + 2 * 0.5 + SLACK)
        assert time.monotonic() - sent < 1 + 0.5 * 2 + SLACK
        lines = events_of(events)
        hooks = [line for line in lines if line.startswith("hook")]
        assert hooks == ["hook second_registered", "hook first_registered"]
        assert status == 4, "a hook that timed out makes the exit status 4"
        assert "shutdown hook second_registered failed: TimeoutError" in server.log()


def test_background_work_finishes_before_hooks_and_consumer_stops(tmp_path: Path) -> None:
    with drainable(tmp_path, "gracekit", SHUTDOWN_DELAY="0.5") as (server, events):
        assert httpx.get(server.url + "/background?ms=1500").text == "queued"
        exit_after(server)
        assert wait_exit(server, 0.5 + 3 + SLACK) == 0
        lines = events_of(events)
        assert lines[0].startswith("consumer stopped after")
        assert lines.index("background 1500 done") < lines.index("hook second_registered")


def test_sigint_forces_a_fast_exit(tmp_path: Path) -> None:
    with (
        drainable(tmp_path, "gracekit", SHUTDOWN_DELAY="10", DRAIN_TIMEOUT="10") as (server, _),
        ThreadPoolExecutor(2) as pool,
    ):
        long = in_background(pool, server.url + "/slow?ms=30000")
        wait_in_flight(server, 1)
        sent = exit_after(server, signal.SIGTERM)
        wait_not_ready(server)
        server.process.send_signal(signal.SIGINT)
        assert long.result(timeout=5).status_code == 503
        status = wait_exit(server, SLACK + 1)
        assert time.monotonic() - sent < 1 + SLACK
        assert status == 3, "work was cut short: the drain did not complete"
        assert "shutdown forced by SIGINT" in server.log()


def test_sigterm_with_nothing_in_flight_exits_zero_after_the_delay(tmp_path: Path) -> None:
    with drainable(tmp_path, "gracekit", SHUTDOWN_DELAY="1") as (server, _):
        sent = exit_after(server)
        assert wait_exit(server, 1 + SLACK) == 0
        elapsed = time.monotonic() - sent
        assert 1.0 <= elapsed < 1 + SLACK


def test_five_hundred_slow_requests_in_flight_all_complete(tmp_path: Path) -> None:
    with drainable(tmp_path, SHUTDOWN_DELAY="0.5", DRAIN_TIMEOUT="15") as (server, _):
        statuses: list[int] = []
        arrived = threading.Event()

        async def many() -> None:
            limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:

                async def one() -> None:
                    statuses.append((await http.get("/slow?ms=8000")).status_code)

                async with anyio.create_task_group() as tg:
                    for _ in range(500):
                        tg.start_soon(one)

        def signal_when_arrived() -> None:
            wait_in_flight(server, 500, timeout=20)
            server.process.send_signal(signal.SIGTERM)
            arrived.set()

        killer = threading.Thread(target=signal_when_arrived)
        killer.start()
        anyio.run(many)
        killer.join()
        assert arrived.is_set(), "SIGTERM was sent while all 500 were in flight"
        assert len(statuses) == 500
        assert set(statuses) == {200}, f"lost: {len([s for s in statuses if s != 200])}"
        assert wait_exit(server, 0.5 + 15 + SLACK) == 0


def test_gunicorn_worker_runs_the_same_sequence(tmp_path: Path) -> None:
    gunicorn = drainable(
        tmp_path, "gunicorn", args=["--graceful-timeout", "4"], SHUTDOWN_DELAY="1.5"
    )
    with gunicorn as (server, events), ThreadPoolExecutor(2) as pool:
        pending = in_background(pool, server.url + "/slow?ms=2500")
        wait_in_flight(server, 1)
        sent = exit_after(server)
        wait_not_ready(server)
        response = httpx.get(server.url + "/", timeout=5)
        assert response.status_code == 200, "the worker keeps serving through the delay"
        assert response.headers["connection"] == "close"
        assert pending.result(timeout=10).status_code == 200
        assert wait_exit(server, 1.5 + 3 + SLACK) == 0
        assert time.monotonic() - sent >= 1.5
        log = server.log()
        assert "the grace period of 4 s is shorter than the" in log, log
        assert events_of(events)[-2:] == ["hook second_registered", "hook first_registered"]


def test_prestop_spends_the_delay_and_sigterm_adds_none(tmp_path: Path) -> None:
    with drainable(tmp_path, "gracekit", SHUTDOWN_DELAY="1.5", PRESTOP_TOKEN="s3cret") as (
        server,
        _,
    ):
        refused = httpx.get(server.url + "/health/prestop", timeout=5)
        assert refused.status_code == 401
        assert httpx.get(server.url + "/health/ready").status_code == 200, "nothing changed"
        began = time.monotonic()
        hook = httpx.get(
            server.url + "/health/prestop", headers={"authorization": "Bearer s3cret"}, timeout=10
        )
        assert (hook.status_code, hook.text) == (200, "draining\n")
        assert 1.5 <= time.monotonic() - began < 1.5 + SLACK
        server.process.send_signal(signal.SIGTERM)  # what the kubelet does next
        assert wait_exit(server, SLACK) == 0
        assert time.monotonic() - began < 1.5 + SLACK, "SIGTERM must not add the delay again"
        assert "shutdown started by preStop" in server.log()


@pytest.mark.parametrize(
    ("options", "env", "delayed"),
    [
        (["--reload"], {}, False),
        (["--shutdown-delay", "auto"], {}, False),
        (["--shutdown-delay", "auto"], {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, True),
        (["--shutdown-delay", "0"], {}, False),
    ],
)
def test_when_the_delay_is_skipped(
    tmp_path: Path, options: list[str], env: dict[str, str], delayed: bool
) -> None:
    settings = {"SHUTDOWN_DELAY": "3", "EVENTS_FILE": str(tmp_path / "events.txt"), **env}
    with run_uvicorn(
        "drainable:app",
        app_dir=TEST_APPS,
        env=settings,
        ready_path="/health/ready",
        launcher="gracekit",
        args=options,
    ) as server:
        sent = exit_after(server)
        wait_exit(server, 3 + SLACK + 3)
        elapsed = time.monotonic() - sent
        if delayed:
            assert elapsed >= 3
        else:
            assert elapsed < 3, f"{options} {env}: took {elapsed:.2f} s\n{server.log()}"


def test_gracekit_run_with_workers_drains_every_worker(tmp_path: Path) -> None:
    workers = drainable(tmp_path, "gracekit", args=["--workers", "2"])
    with workers as (server, events), ThreadPoolExecutor(2) as pool:
        assert wait_until(lambda: _both_workers_up(server), timeout=20)
        pending = in_background(pool, server.url + "/slow?ms=2000")
        wait_in_flight(server, 1)
        sent = exit_after(server)
        wait_not_ready(server)
        assert httpx.get(server.url + "/", timeout=5).headers["connection"] == "close"
        assert pending.result(timeout=10).status_code == 200
        assert wait_exit(server, 1 + 3 + SLACK) == 0
        assert time.monotonic() - sent < 2 + SLACK
        hooks = [line for line in events_of(events) if line.startswith("hook")]
        assert hooks == ["hook second_registered", "hook first_registered"] * 2


def _both_workers_up(server: Server) -> bool:
    return server.log().count("Application startup complete") >= 2
