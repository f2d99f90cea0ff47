"""Reading a gracekit app and a container spec; the timing arithmetic of the Kubernetes tools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount, Router

import gracekit.kubernetes
from gracekit import DrainMiddleware, Lifecycle, Management, ProbeApp, ShutdownTiming
from gracekit.kubernetes import inspect_app
from gracekit.kubernetes.appinfo import AppInfo, CheckInfo, load_app
from gracekit.kubernetes.container import PreStopHook, parse_command, prestop_hook, resolve_port
from gracekit.kubernetes.errors import AppLoadError
from gracekit.kubernetes.timing import (
    Budget,
    blocked_loop_tolerance,
    effective_timing,
    resolve_int_or_percent,
    restart_tolerance,
)


async def noop() -> None:
    pass


def test_the_kubernetes_api_is_pinned_and_needs_no_yaml_to_import() -> None:
    assert gracekit.kubernetes.__all__ == [
        "AppInfo", "Finding", "ManifestOptions", "build_manifest", "diagnose", "inspect_app",
    ]  # fmt: skip
    code = (
        "import sys, gracekit.kubernetes, gracekit.kubernetes.command, gracekit.cli; "
        "gracekit.cli._parser(); print('yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_a_fastapi_app_with_middleware_and_a_nested_mount() -> None:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=3, drain_timeout=9, hook_timeout=2))
    lifecycle.on_shutdown(noop, name="a", timeout=7)
    lifecycle.on_shutdown(noop, name="b")
    lifecycle.startup_task(noop, name="warm", timeout=12)
    lifecycle.check(noop, name="db", probes=("startup", "readiness"), timeout=2, initial_delay=5)
    lifecycle.gate("ready-gate")
    app = FastAPI(lifespan=lifecycle.lifespan())
    inner = Router(routes=[Mount("/health", ProbeApp(lifecycle, prestop=True, prestop_token="t"))])
    app.mount("/internal", inner)
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    info = inspect_app(app, source="svc:app")
    assert info.source == "svc:app"
    assert info.timing == ShutdownTiming(delay=3, drain_timeout=9, hook_timeout=2)
    assert info.health_path == "/internal/health"
    assert (info.serves_prestop, info.prestop_protected) == (True, True)
    assert info.hooks == (7.0, None)
    assert info.hooks_total() == 9  # 7 + the 2 s hook_timeout
    assert info.hooks_total(ShutdownTiming(hook_timeout=4)) == 11
    assert info.probe_names() == {"db", "ready-gate"}
    # The task (12 s) and the check's first run (5 s delay + 10 % jitter, then 2 s) overlap.
    assert info.startup_work() == 12
    assert info.with_timing(ShutdownTiming()).timing == ShutdownTiming()


def test_the_management_port_and_the_prestop_header_are_read() -> None:
    management = Management(port=9001, prestop_token="m", prestop_header="X-Prestop")
    lifecycle = Lifecycle(management=management)
    probes = ProbeApp(lifecycle, prestop=True, prestop_token="t", prestop_header="X-Drain")
    info = inspect_app(Starlette(routes=[Mount("/health", probes)]))
    assert info.management == management
    assert "'m'" not in repr(info), "the token stays out of reprs"
    assert info.prestop_header == "x-drain"
    bearer = ProbeApp(lifecycle, prestop=True, prestop_token="t")
    assert inspect_app(Starlette(routes=[Mount("/h", bearer)])).prestop_header is None
    assert inspect_app(Starlette(routes=[Mount("/h", ProbeApp(Lifecycle()))])).management is None


def test_the_container_sets_or_overrides_the_management_port() -> None:
    code = AppInfo(management=Management(port=9001, prestop_token="m"))
    assert code.management_in({}) == code.management
    from_env = code.management_in({"GRACEKIT_MANAGEMENT_PORT": "9100"})
    assert from_env == Management(port=9100, prestop_token="m"), "the rest stays the code's"
    # gracekit run --management-port sets the variable: it wins over the env.
    both = code.management_in({"GRACEKIT_MANAGEMENT_PORT": "junk"}, port=9200)
    assert both == Management(port=9200, prestop_token="m")
    assert AppInfo().management_in({}) is None
    assert AppInfo().management_in({}, port=9300) == Management(port=9300)
    with pytest.raises(ValueError, match="GRACEKIT_MANAGEMENT_PORT must be a port number"):
        code.management_in({"GRACEKIT_MANAGEMENT_PORT": "junk"})


def test_a_wrapped_app_without_a_probe_app() -> None:
    lifecycle = Lifecycle()
    wrapped = DrainMiddleware(Starlette(lifespan=lifecycle.lifespan()), lifecycle=lifecycle)
    info = inspect_app(wrapped)
    assert info.health_path is None
    assert info.hooks == ()
    assert info.startup_work() == 0


def test_startup_work_is_unbounded_with_a_task_without_timeout() -> None:
    info = AppInfo(startup_tasks=(("a", 3.0), ("b", None)))
    assert info.startup_work() is None
    check = CheckInfo(
        "s", frozenset({"startup"}), timeout=1, interval=5, initial_delay=10, jitter=0.5
    )
    assert AppInfo(checks=(check,)).startup_work() == 16


def test_an_app_without_gracekit_or_with_two_lifecycles_is_refused() -> None:
    with pytest.raises(AppLoadError, match="has no gracekit Lifecycle"):
        inspect_app(Starlette(), source="plain:app")
    one, two = Lifecycle(), Lifecycle()
    app = Starlette(routes=[Mount("/health", ProbeApp(one))])
    app.add_middleware(DrainMiddleware, lifecycle=two)
    with pytest.raises(AppLoadError, match="2 different Lifecycles"):
        inspect_app(app)


def test_load_app_sees_the_environment_given_then_gives_it_back(tmp_path: Path) -> None:
    (tmp_path / "envapp.py").write_text(
        "import os\n"
        "seen = os.environ.get('K8S_TEST_SETTING')\n"
        "def make():\n"
        "    return ('made', os.environ.get('K8S_TEST_SETTING'))\n"
    )
    assert "K8S_TEST_SETTING" not in os.environ
    module = load_app("envapp:seen", app_dir=str(tmp_path), environ={"K8S_TEST_SETTING": "x"})
    assert module == "x"
    assert "K8S_TEST_SETTING" not in os.environ
    made = load_app(
        "envapp:make", app_dir=str(tmp_path), factory=True, environ={"K8S_TEST_SETTING": "y"}
    )
    assert made == ("made", "y")
    with pytest.raises(AppLoadError, match="MODULE:APP"):
        load_app("envapp")
    with pytest.raises(AppLoadError, match="is not callable"):
        load_app("envapp:seen", app_dir=str(tmp_path), factory=True)


@pytest.mark.parametrize(
    ("words", "server", "host", "port", "delay", "drain", "shell"),
    [
        (["gracekit", "run", "m:app"], "gracekit run", "127.0.0.1", 8000, None, None, False),
        (["python", "-m", "gracekit", "run", "m:app", "--host=0.0.0.0", "--port", "9000",
          "--shutdown-delay", "3", "--drain-timeout", "8"],
         "gracekit run", "0.0.0.0", 9000, 3.0, 8.0, False),
        (["gracekit", "run", "m:app", "--shutdown-delay", "auto"],
         "gracekit run", "127.0.0.1", 8000, None, None, False),
        (["/usr/local/bin/uvicorn", "m:app", "--host", "::", "--port=81"],
         "uvicorn", "::", 81, None, None, False),
        (["gunicorn", "-k", "w", "-b", "0.0.0.0:7000", "m:app"],
         "gunicorn", "0.0.0.0", 7000, None, None, False),
        (["sh", "-c", "exec uvicorn m:app --host 0.0.0.0"],
         "uvicorn", "0.0.0.0", 8000, None, None, False),
        (["/bin/sh", "-c", "uvicorn m:app --port $PORT"],
         "uvicorn", "127.0.0.1", None, None, None, True),
    ],
)  # fmt: skip
def test_server_command_lines(
    words: list[str], server: str, host: str, port: int | None,
    delay: float | None, drain: float | None, shell: bool,
) -> None:  # fmt: skip
    command = parse_command(words)
    assert command is not None
    assert (command.server, command.host, command.port) == (server, host, port)
    assert (command.shutdown_delay, command.drain_timeout, command.via_shell) == (
        delay,
        drain,
        shell,
    )


def test_the_management_port_of_a_command_line() -> None:
    def management(*words: str) -> int | None:
        command = parse_command(["gracekit", "run", "m:app", *words])
        assert command is not None
        return command.management_port

    assert management() is None
    assert management("--management-port", "9001") == 9001
    assert management("--management-port=9002", "--port", "80") == 9002
    assert management("--management-port", "$PORT") is None  # not known from the manifest
    uvicorn = parse_command(["uvicorn", "m:app", "--management-port", "9001"])
    assert uvicorn is not None
    assert uvicorn.management_port is None, "gracekit run's flag only"


def test_other_commands_are_not_guessed() -> None:
    assert parse_command([]) is None
    assert parse_command(["node", "server.js"]) is None
    assert parse_command(["gracekit", "doctor"]) is None
    assert parse_command(["sh", "-c", "unbalanced 'quote"]) is None


def test_prestop_hooks_and_ports() -> None:
    def hook(handler: object) -> PreStopHook:
        found = prestop_hook({"lifecycle": {"preStop": handler}})
        assert found is not None
        return found

    assert hook({"sleep": {"seconds": 5}}).sleep == 5
    assert hook({"exec": {"command": ["/bin/sleep", "7"]}}).sleep == 7
    assert hook({"exec": {"command": ["sh", "-c", "sleep 3"]}}).sleep == 3
    assert hook({"exec": {"command": ["nginx", "-s", "quit"]}}).sleep is None
    http = hook({"httpGet": {"path": "/health/prestop?x=1", "port": "web"}}).endpoint
    assert (http.kind, http.path, http.query, http.port) == (
        "httpGet",
        "/health/prestop",
        "x=1",
        "web",
    )
    assert prestop_hook({}) is None
    assert prestop_hook({"lifecycle": "nonsense"}) is None
    container = {"ports": [{"name": "web", "containerPort": 8080}, "junk"]}
    assert resolve_port("web", container) == 8080
    assert resolve_port("8081", container) == 8081
    assert resolve_port(8082, container) == 8082
    assert resolve_port("admin", container) is None
    assert resolve_port(True, container) is None


def test_effective_timing_reads_the_container_as_kubernetes_would() -> None:
    code = ShutdownTiming(delay=5, drain_timeout=20, hook_timeout=5)
    assert effective_timing(code, {}) == code
    environ = {"GRACEKIT_DRAIN_TIMEOUT": "30", "GRACEKIT_SHUTDOWN_DELAY": "auto"}
    # "auto" keeps the delay: the container runs inside Kubernetes.
    assert effective_timing(code, environ) == ShutdownTiming(delay=5, drain_timeout=30)
    assert effective_timing(code, environ, delay=1, drain_timeout=2) == ShutdownTiming(
        delay=1, drain_timeout=2
    )
    with pytest.raises(ValueError, match="GRACEKIT_HOOK_TIMEOUT must be a number"):
        effective_timing(code, {"GRACEKIT_HOOK_TIMEOUT": "soon"})


def test_the_budget_and_the_tolerances() -> None:
    budget = Budget(ShutdownTiming(delay=0), hooks=3.5, prestop=5)
    assert budget.grace_period() == 31  # 5 + 0 + 20 + 3.5 + 2, rounded up
    assert budget.explain() == "preStop 5 + delay 0 + drain 20 + hooks 3.5 + margin 2"
    assert restart_tolerance({}) == 30  # Kubernetes' defaults: 3 x 10 s
    assert (
        restart_tolerance({"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 30})
        == 65
    )
    assert blocked_loop_tolerance({}) == 21  # 1 + 2 x 10
    assert blocked_loop_tolerance({"timeoutSeconds": 2, "failureThreshold": "x"}) == 22


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [(1, 3, True, 1), ("25%", 3, True, 1), ("25%", 3, False, 0), ("100%", 2, False, 2),
     ("50%", 5, False, 2), ("x%", 3, True, None), (True, 3, True, None), (None, 3, True, None)],
)  # fmt: skip
def test_int_or_percent(value: object, total: int, up: bool, expected: int | None) -> None:
    assert resolve_int_or_percent(value, total, round_up=up) == expected
