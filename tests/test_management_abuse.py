"""The management port under abuse from inside the cluster, side by side with the app's port
(uvicorn) of the same ``gracekit run`` process: kubelet-like probes keep getting through while
idle, slow and reconnecting connections hold either port. On the management port only (the
app's is uvicorn's own, and benchmarks/abuse_bench.py reports how it fares): pipelining without
reading neither keeps the probes out nor grows memory, a request hiding another behind
Content-Length + Transfer-Encoding gets 400 and the connection closes, a large body gets 413,
and malformed requests leave no trace in the log. One server process for every attack; each
attack is bounded in connections and time, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from tests.support.abuse import (
    CONNECTIONS,
    Outcome,
    probe_under_attack,
    raise_open_files,
    smuggle,
)
from tests.support.server import TEST_APPS, Server, free_port, run_uvicorn, wait_until

PROBE_SECONDS = 6.0  # 60 probes a port at 10 a second
MIN_SUCCESS = 0.99
MAX_RSS_GROWTH_MB = 10.0  # it grew 21 MB while pipelining kept the probes out


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, int]]:
    raise_open_files(4096)  # before the server starts: it inherits the limit
    port = free_port()
    with run_uvicorn(
        "managed:app",
        app_dir=TEST_APPS,
        launcher="gracekit",
        args=["--management-port", str(port), "--log-level", "warning"],
        ready_port=port,
    ) as server:
        yield server, port


def ports(served: tuple[Server, int]) -> dict[str, tuple[int, str]]:
    server, management = served
    return {"management": (management, "/health/live"), "app": (server.port, "/")}


def probe(
    server: Server, kind: str, port: int, path: str, *, name: str, attack_path: str = "/"
) -> Outcome:
    """Probe *port* while :data:`CONNECTIONS` of *kind* attack it: the attack held them all,
    and at least MIN_SUCCESS of the probes got through."""
    outcome = probe_under_attack(
        kind, port, pid=server.process.pid, seconds=PROBE_SECONDS, path=path,
        attack_path=attack_path,
    )  # fmt: skip
    assert outcome.stats["opened"] >= CONNECTIONS[kind], f"the attack never began: {outcome}"
    assert server.process.poll() is None, server.log()
    assert outcome.success >= MIN_SUCCESS, (
        f"{kind} on the {name} port: {outcome.succeeded} of {outcome.sent} probes, "
        f"slowest {outcome.slowest:.2f} s"
    )
    assert outcome.sent >= PROBE_SECONDS * 10 * 0.8, "the prober itself fell behind"
    return outcome


@pytest.mark.parametrize("kind", ["idle", "slow-header", "reconnecting"])
def test_probes_get_through_while_connections_hold_the_port(
    served: tuple[Server, int], kind: str
) -> None:
    for name, (port, path) in ports(served).items():
        # Liveness on the management port; on the app's port, the app's own route.
        probe(served[0], kind, port, path, name=name)


def test_pipelining_without_reading_neither_keeps_probes_out_nor_grows_memory(
    served: tuple[Server, int],
) -> None:
    # More connections than the budget, each being answered for as long as it kept sending,
    # so never closed for room: they kept every probe out. The app's port (uvicorn) grows by
    # megabytes a second here: benchmarks/abuse_bench.py measures it.
    server, port = served
    outcome = probe(
        server, "pipelining", port, "/health/live", name="management", attack_path="/metrics"
    )
    assert outcome.rss_growth_mb < MAX_RSS_GROWTH_MB, f"RSS grew {outcome.rss_growth_mb:.1f} MB"


def test_a_request_hidden_behind_content_length_and_transfer_encoding_is_not_answered(
    served: tuple[Server, int],
) -> None:
    received, closed = smuggle(served[1])
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, "the hidden request got an answer"
    assert closed, "the connection stays open after the 400"
    assert b"cache-control: no-store" in received.lower()


def test_a_large_body_gets_413(served: tuple[Server, int]) -> None:
    body = b"x" * 100_000
    head = b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served[1]), timeout=5) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # closed once answered: the body is not read
            sock.sendall(body)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_malformed_requests_leave_no_trace_in_the_log(served: tuple[Server, int]) -> None:
    # uvicorn warns of each: through a port any pod reaches, anyone could fill the log.
    server, port = served
    invalid, upgrade = "Invalid HTTP request received.", "Unsupported upgrade request."
    logged = server.log().count(invalid)
    upgrading = b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
    for data, status in ((b"BROKEN\r\n\r\n", b"400 Bad Request"), (upgrading + b"\r\n", b"200 ")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data)
            assert sock.recv(65536).startswith(b"HTTP/1.1 " + status)
    # The control: the same on the app's port is logged, so the log would show the others.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"BROKEN\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    assert wait_until(lambda: server.log().count(invalid) > logged, timeout=5)
    log = server.log()
    assert log.count(invalid) == logged + 1, log
    assert upgrade not in log, log
