"""The conformance matrix: the same black-box tests for each of {Starlette, FastAPI} x
{``gracekit run``, stock ``uvicorn``, the gunicorn worker}, each app wired by hand as the docs
wire it (tests/apps/matrix_*.py), in real processes; and for each app wired by
``gracekit.install()``, as the README wires it, under one of the servers (the wiring is the
same under each).

Each cell runs its scenario once (tests/support/conformance.py: a SIGTERM shutdown and a preStop
shutdown, in two processes at once) and the tests below judge what it recorded.
"""

from __future__ import annotations

import pytest

from tests.support.conformance import (
    APPS,
    DEADLINE,
    DELAY,
    INSTALLED,
    KEEP_ALIVE_IDLE,
    LAUNCHERS,
    LONG_MS,
    PRESTOP_DELAY,
    SHORT_MS,
    SLACK,
    STREAM_CHUNKS,
    Record,
    Reply,
    run_cell,
)
from tests.support.metrics import Samples, label_values, value

CELLS = [(app, launcher) for app in APPS for launcher in LAUNCHERS] + [
    ("fastapi" + INSTALLED, "gracekit"),
    ("starlette" + INSTALLED, "uvicorn"),
]
#: The exit status after a clean shutdown: ``gracekit run`` says how the shutdown went (0 when
#: clean); stock uvicorn exits 0 once gracekit has taken its signals over (it no longer
#: re-raises SIGTERM); gunicorn's master exits 0 after a SIGTERM whose workers stopped cleanly.
EXIT_STATUS = {"gracekit": 0, "uvicorn": 0, "gunicorn": 0}
#: Every route template the scenario's requests can be counted under.
APP_ROUTES = {"/", "/items/{item_id}", "/slow", "/hang", "/stream"}


@pytest.fixture(scope="module", params=CELLS, ids=[f"{a}-{launcher}" for a, launcher in CELLS])
def cell(request: pytest.FixtureRequest) -> tuple[str, Record]:
    app, launcher = request.param
    return launcher, run_cell(app, launcher)


def _requests(scrape: Samples) -> dict[tuple[str, str], float]:
    """http_requests_total by (route, status)."""
    counts: dict[tuple[str, str], float] = {}
    for (name, labels), count in scrape.items():
        if name == "http_requests_total":
            key = (dict(labels)["route"], dict(labels)["status"])
            counts[key] = counts.get(key, 0) + count
    return counts


def test_probes_answer(cell: tuple[str, Record]) -> None:
    _, rec = cell
    for probe in ("startup", "live", "ready"):
        for name in (f"probe {probe}", f"management {probe}"):
            reply = rec[name]
            assert (reply.status, reply.body) == (200, b"pass\n"), name
            assert reply.headers["cache-control"] == "no-store", name


def test_verbose_reports_say_why(cell: tuple[str, Record]) -> None:
    _, rec = cell
    ready = rec["verbose ready"].json()
    assert ready["probe"] == "readiness"
    assert ready["status"] == "pass"
    assert ready["phase"] == "started"
    assert ready["checks"]["upstream"]["status"] == "pass"
    assert ready["gates"] == {"cache-warm": "open"}
    startup = rec["verbose startup"].json()
    assert startup["tasks"]["warm_cache"]["status"] == "pass"
    live = rec["verbose live"].json()
    assert (live["probe"], live["status"]) == ("liveness", "pass")
    assert "loop_lag_ms" in live


def _gateway_timeout(reply: Reply, budget: float) -> str:
    """Check a 504 problem+json answer for /hang cut after *budget* seconds; its detail."""
    assert reply.status == 504
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["title"] == "Gateway Timeout"
    assert (problem["route"], problem["budget_s"]) == ("/hang", budget)
    assert budget <= reply.seconds < 0.5 + SLACK
    return str(problem["detail"])


def test_a_route_deadline_answers_504_problem_json(cell: tuple[str, Record]) -> None:
    detail = _gateway_timeout(cell[1]["route deadline"], 0.5)
    assert detail == "GET /hang did not finish within its 0.5 s deadline."


def test_a_callers_budget_shortens_the_deadline(cell: tuple[str, Record]) -> None:
    detail = _gateway_timeout(cell[1]["budget deadline"], 0.2)
    assert detail == "GET /hang did not finish within the 0.2 s budget its caller sent."


def test_after_sigterm_readiness_fails_and_liveness_holds(cell: tuple[str, Record]) -> None:
    _, rec = cell
    assert rec["not ready"] < 2.0, "readiness fails at once"
    assert rec["live during"].status == 200
    assert rec["management ready during"].status == 503
    assert rec["management live during"].status == 200


def test_the_delay_serves_with_connection_close(cell: tuple[str, Record]) -> None:
    _, rec = cell
    load = rec["load"]
    assert len(load) >= 5, "a load, however small"
    assert set(load) == {(200, "close")}


def test_in_flight_requests_complete(cell: tuple[str, Record]) -> None:
    _, rec = cell
    assert (rec["short"].status, rec["short"].json()) == (200, {"slept_ms": SHORT_MS})
    assert (rec["long"].status, rec["long"].json()) == (200, {"slept_ms": LONG_MS})
    _, _, delay_ended = rec["websocket"]  # websockets are closed as the delay ends
    assert rec["long finished"] > delay_ended, "it ran on into the drain, accepting stopped"


def test_a_streaming_response_completes(cell: tuple[str, Record]) -> None:
    _, rec = cell
    assert rec["stream"] == (200, STREAM_CHUNKS, True)


def test_websockets_are_closed_going_away_when_the_delay_ends(cell: tuple[str, Record]) -> None:
    _, rec = cell
    echo, code, closed_after = rec["websocket"]
    assert echo == "during the delay"
    assert code == 1001
    assert DELAY - 0.5 <= closed_after < DELAY + SLACK


def test_metrics_count_the_apps_routes_and_nothing_of_gracekits(cell: tuple[str, Record]) -> None:
    # The scrape once the load, the short request and the stream are done: every request the
    # app answered, by template; not one probe, scrape or hook, and no 5xx but the deadlines'.
    _, rec = cell
    scrape = rec["management metrics after"].scrape()
    counts = _requests(scrape)
    assert {route for route, _ in counts} == APP_ROUTES, "no unmatched, /health or /metrics"
    assert {key: n for key, n in counts.items() if key[1].startswith("5")} == {("/hang", "504"): 2}
    load = rec["load"]
    served = counts[("/", "200")] + counts[("/items/{item_id}", "200")]
    assert served == len(load) + 2, "the load, and / and /items/3 before it"
    assert value(scrape, "gracekit_requests_after_shutdown_total") == len(load)
    assert value(scrape, "gracekit_deadline_expired_total", route="/hang") == 2


def test_metrics_endpoints_do_not_count_themselves(cell: tuple[str, Record]) -> None:
    _, rec = cell
    for name in ("metrics", "metrics again", "metrics during", "management metrics"):
        reply = rec[name]
        assert reply.status == 200, name
        routes = label_values(reply.scrape(), "http_requests_total", "route")
        assert routes <= APP_ROUTES, f"{name}: {routes - APP_ROUTES}"
    assert rec["in flight before"] == 4, "the websocket, the stream, two requests: no probe"


def test_the_prestop_hook_needs_its_token(cell: tuple[str, Record]) -> None:
    _, rec = cell
    assert rec["prestop without token"].status == 401
    assert rec["prestop with a wrong token"].status == 403
    assert rec["ready after refused hooks"].status == 200, "nothing changed"


def test_the_prestop_hook_waits_out_the_delay_uncut(cell: tuple[str, Record]) -> None:
    launcher, rec = cell
    hook = rec["prestop"]
    assert (hook.status, hook.body) == (200, b"draining\n")
    assert PRESTOP_DELAY > DEADLINE
    assert PRESTOP_DELAY - 0.2 <= hook.seconds < PRESTOP_DELAY + SLACK
    assert rec["not ready after hook"] < 2.0
    for name in ("metrics during hook", "management metrics during hook"):
        scrape = rec[name].scrape()
        assert value(scrape, "gracekit_requests_in_flight") == 0, f"{name}: the hook counted"
        # Only the keep-alive check's requests, before the hook: not the hook, probes or
        # scrapes, and nothing after the shutdown started.
        assert _requests(scrape) == {("/", "200"): rec["keep-alive"][:2].count(200)}, name
        assert value(scrape, "gracekit_requests_after_shutdown_total") == 0, name
    if launcher == "gracekit":  # elsewhere gracekit's INFO lines are the app's to configure
        assert "shutdown started by preStop" in rec["prestop log"]


def test_the_management_port_serves_probes_metrics_and_prestop(cell: tuple[str, Record]) -> None:
    _, rec = cell
    scrape = rec["management metrics"].scrape()
    assert value(scrape, "gracekit_ready") == 1
    assert value(scrape, "gracekit_phase", phase="started") == 1
    management_hook = rec["management prestop"]
    assert (management_hook.status, management_hook.body) == (200, b"draining\n"), "no token"


def test_exit_status(cell: tuple[str, Record]) -> None:
    launcher, rec = cell
    assert rec["exit"] == EXIT_STATUS[launcher], rec["log"]
    assert DELAY <= rec["exit after"] < DELAY + LONG_MS / 1000 + SLACK
    assert rec["prestop exit"] == EXIT_STATUS[launcher], rec["prestop log"]
    assert rec["prestop exit after"] < SLACK, "SIGTERM after the hook adds no delay"


def test_keep_alive_outlasts_a_proxys_idle_timeout(cell: tuple[str, Record]) -> None:
    # A proxy whose idle timeout is below the server's keep-alive never sends on a connection
    # the server is closing. The docs promise 5 s; a connection idle 3 s must still be open.
    _, rec = cell
    first, second, idle = rec["keep-alive"]
    assert first == 200
    assert idle < 5.0 - 0.5, "the machine stalled: the idle time overshot the keep-alive"
    assert idle >= KEEP_ALIVE_IDLE
    assert second == 200, f"the server closed a connection idle for {idle:.1f} s"


def test_nothing_is_missing_from_the_wiring(cell: tuple[str, Record]) -> None:
    # Every piece is there, so the startup names none missing (tests/test_wiring.py has each
    # of the four warnings); the log shows gracekit's lines under every server.
    _, rec = cell
    for log in (rec["log"], rec["prestop log"]):
        assert "started in" in log, log
        for missing in ("lifespan is not in use", "no DrainMiddleware", "no probe", "no metrics"):
            assert missing not in log, log
