"""The management port under abuse from inside the cluster, side by side with the app's port
(uvicorn) of the same ``gracekit run`` process: kubelet-like probes keep getting through while
idle, slow and reconnecting connections hold either port. On the management port only (the
app's is uvicorn's own, and benchmarks/abuse_bench.py reports how it fares): pipelining without
reading leaves memory flat, a request hiding another behind Content-Length + Transfer-Encoding
gets 400 and the connection closes, and a large body gets 413. One server process for every
attack; each attack is bounded in connections and time, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.abuse import Prober, attack, raise_open_files, rss_mb, smuggle
from tests.support.server import TEST_APPS, Server, free_port, run_uvicorn

PROBE_SECONDS = 6.0  # 60 probes a port at 10 a second
PIPELINING_SECONDS = 15.0
MIN_SUCCESS = 0.99


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


@pytest.mark.parametrize(
    ("kind", "connections"), [("idle", 300), ("slow-header", 300), ("reconnecting", 257)]
)
def test_probes_get_through_while_connections_hold_the_port(
    served: tuple[Server, int], kind: str, connections: int
) -> None:
    server = served[0]
    for name, (port, _) in ports(served).items():
        with attack(kind, port, connections) as attacking:
            # Liveness on the management port; on the app's port, the app's own route.
            probe_port, path = ports(served)[name]
            succeeded, sent, slowest = Prober(probe_port, path=path).measure(PROBE_SECONDS)
        assert server.process.poll() is None, server.log()
        assert sent >= PROBE_SECONDS * 10 * 0.8, f"{name}: the prober itself fell behind"
        assert succeeded >= MIN_SUCCESS * sent, (
            f"{kind} on the {name} port ({attacking.stats}): {succeeded} of {sent} probes, "
            f"slowest {slowest:.2f} s"
        )


def test_pipelining_without_reading_leaves_memory_flat(served: tuple[Server, int]) -> None:
    # The app's port is measured by benchmarks/abuse_bench.py: under uvicorn it grows here.
    server, port = served
    before = rss_mb(server.process.pid)
    peak = before
    with attack("pipelining", port, 4, path="/metrics"):
        deadline = time.monotonic() + PIPELINING_SECONDS
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(server.process.pid))
            time.sleep(0.25)
    assert server.process.poll() is None, server.log()
    assert peak - before < 20, f"RSS {before:.1f} -> {peak:.1f} MB"


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
