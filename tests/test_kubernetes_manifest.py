"""gracekit manifest: objects valid against Kubernetes' schemas, numbers read from the app, and
output the doctor finds nothing wrong with."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gracekit import Management
from gracekit.cli import main
from gracekit.drain.timing import ShutdownTiming
from gracekit.kubernetes import AppInfo, ManifestOptions, build_manifest, diagnose
from gracekit.kubernetes._yaml import load_all
from gracekit.kubernetes.appinfo import CheckInfo, inspect_app, load_app
from gracekit.kubernetes.deployment import Document
from gracekit.kubernetes.errors import InputError
from tests.support.server import TEST_APPS

#: Two minor versions apart, both with the preStop sleep action (1.30 and later have it on).
VERSIONS = ("1.30", "1.34")
ALL = ("deployment", "service", "pdb")
TOKEN = "t0ken"


@pytest.fixture(scope="module")
def info() -> AppInfo:
    return inspect_app(load_app("k8s_app:app", app_dir=str(TEST_APPS)), source="k8s_app:app")


def validate(document: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    spec = documents[0]["spec"]["template"]["spec"] if "kind" in documents[0] else documents[0]
    result: dict[str, Any] = spec["containers"][0]
    return result


def env(documents: list[dict[str, Any]]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container(documents)["env"]}


def grace(documents: list[dict[str, Any]]) -> int:
    spec = documents[0]["spec"]["template"]["spec"] if "kind" in documents[0] else documents[0]
    value: int = spec["terminationGracePeriodSeconds"]
    return value


@pytest.mark.parametrize("prestop", ["http", "sleep", "exec-sleep", "none"])
@pytest.mark.parametrize("version", VERSIONS)
def test_objects_validate_against_the_schemas(info: AppInfo, prestop: str, version: str) -> None:
    options = ManifestOptions(
        name="shop", app="k8s_app:app", prestop=prestop, prestop_token=TOKEN, objects=ALL,
        cpu="100m", memory="128Mi",
    )  # fmt: skip
    documents = build_manifest(info, options)
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "PodDisruptionBudget"]
    for document in documents:
        validate(document, version)


def test_the_pod_spec_fragment_fits_a_deployment(info: AppInfo) -> None:
    [fragment] = build_manifest(info, ManifestOptions(prestop_token=TOKEN))
    [deployment] = build_manifest(
        info, ManifestOptions(prestop_token=TOKEN, objects=("deployment",))
    )
    assert deployment["spec"]["template"]["spec"] == fragment
    for version in VERSIONS:
        validate(deployment, version)


def test_an_older_cluster_needs_the_exec_sleep(info: AppInfo) -> None:
    exec_sleep = build_manifest(info, ManifestOptions(prestop="exec-sleep", objects=ALL))
    validate(exec_sleep[0], "1.27")
    sleep = build_manifest(info, ManifestOptions(prestop="sleep", objects=ALL))
    with pytest.raises(kubernetes_validate.ValidationError, match="'sleep' was unexpected"):
        validate(sleep[0], "1.27")  # the schema check can fail: the sleep action is 1.29+


@pytest.mark.parametrize("management", [None, 9001])
@pytest.mark.parametrize("prestop", ["http", "sleep", "exec-sleep", "none"])
def test_the_doctor_finds_nothing_in_a_manifest(
    info: AppInfo, prestop: str, management: int | None
) -> None:
    options = ManifestOptions(
        name="shop", app="k8s_app:app", prestop=prestop, prestop_token=TOKEN, objects=ALL,
        management_port=management,
    )  # fmt: skip
    documents = [Document("-", n, d) for n, d in enumerate(build_manifest(info, options), 1)]
    assert diagnose(documents, info) == ([], 1)


def test_timings_come_from_the_app(info: AppInfo) -> None:
    documents = build_manifest(info, ManifestOptions(prestop_token=TOKEN))
    assert grace(documents) == 31  # delay 5 + drain 20 + the 4 s hook + margin 2
    assert env(documents) == {"GRACEKIT_GRACE_PERIOD": "31"}
    spec = container(documents)
    assert spec["lifecycle"]["preStop"]["httpGet"] == {
        "path": "/health/prestop",
        "port": "http",
        "httpHeaders": [{"name": "Authorization", "value": "Bearer t0ken"}],
    }
    # The 40 s startup task plus 30 s of slack for the import and the app's own lifespan.
    assert spec["startupProbe"]["failureThreshold"] * spec["startupProbe"]["periodSeconds"] == 70
    assert spec["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/health/live"


def test_a_sleep_hook_takes_the_delay_from_the_app(info: AppInfo) -> None:
    documents = build_manifest(info, ManifestOptions(prestop="sleep", delay=7))
    assert container(documents)["lifecycle"]["preStop"] == {"sleep": {"seconds": 7}}
    # The app must not wait again after SIGTERM: 7 (sleep) + 0 + 20 + 4 + 2.
    assert env(documents) == {"GRACEKIT_GRACE_PERIOD": "33", "GRACEKIT_SHUTDOWN_DELAY": "0"}
    assert grace(documents) == 33


def test_timing_flags_go_into_the_environment(info: AppInfo) -> None:
    options = ManifestOptions(prestop="none", delay=2, drain_timeout=10, hook_timeout=9)
    documents = build_manifest(info, options)
    assert env(documents) == {
        "GRACEKIT_GRACE_PERIOD": "18",  # 2 + 10 + the hook's own 4 s bound + 2
        "GRACEKIT_SHUTDOWN_DELAY": "2",
        "GRACEKIT_DRAIN_TIMEOUT": "10",
        "GRACEKIT_HOOK_TIMEOUT": "9",
    }
    assert "lifecycle" not in container(documents)


def test_probe_settings_follow_the_checks_and_the_loop_lag() -> None:
    checks = (
        CheckInfo("db", frozenset({"readiness"}), timeout=1, interval=3, failure_threshold=2),
    )
    documents = build_manifest(AppInfo(checks=checks, loop_lag_threshold=45.0))
    spec = container(documents)
    # Probing more often than the check runs adds nothing; the check already damps (2 fails).
    assert spec["readinessProbe"]["periodSeconds"] == 3
    assert spec["readinessProbe"]["failureThreshold"] == 1
    # Liveness outlasts a 45 s stall: 2 + (failureThreshold - 1) x 10 >= 45.
    assert spec["livenessProbe"]["failureThreshold"] == 6
    defaults = container(build_manifest(AppInfo()))
    assert defaults["readinessProbe"]["periodSeconds"] == 5
    assert defaults["livenessProbe"]["failureThreshold"] == 3


def test_what_the_app_cannot_do_is_refused(info: AppInfo) -> None:
    with pytest.raises(InputError, match="needs a token: pass --prestop-token"):
        build_manifest(info)
    plain = AppInfo(source="plain:app")
    with pytest.raises(InputError, match="does not serve /health/prestop"):
        build_manifest(plain, ManifestOptions(prestop="http"))
    with pytest.raises(InputError, match="mounts no ProbeApp and has no management port"):
        build_manifest(AppInfo(health_path=None, source="bare:app"))
    with pytest.raises(ValueError, match="prestop must be one of"):
        ManifestOptions(prestop="wait")


def test_probes_and_the_hook_on_the_management_port() -> None:
    info = AppInfo(health_path=None, source="m:app", management=Management(port=9001))
    documents = build_manifest(info, ManifestOptions(name="shop", objects=ALL))
    spec = container(documents)
    assert spec["ports"] == [
        {"name": "http", "containerPort": 8000},
        {"name": "management", "containerPort": 9001},
    ]
    for probe, path in (("startupProbe", "startup"), ("livenessProbe", "live"),
                        ("readinessProbe", "ready")):  # fmt: skip
        assert spec[probe]["httpGet"] == {"path": f"/health/{path}", "port": "management"}
    # The port follows --host 0.0.0.0, which every pod reaches: the hook sends a token made
    # up here, which the container's env gives the app.
    hook = spec["lifecycle"]["preStop"]["httpGet"]
    token = env(documents)["GRACEKIT_PRESTOP_TOKEN"]
    assert len(token) >= 32
    assert hook == {
        "path": "/health/prestop",
        "port": "management",
        "httpHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}],
    }
    assert "GRACEKIT_MANAGEMENT_PORT" not in env(documents), "the code's port needs no variable"
    service = documents[1]["spec"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    for document in documents:
        validate(document, VERSIONS[-1])
    docs = [Document("-", n, d) for n, d in enumerate(documents, 1)]
    assert diagnose(docs, info) == ([], 1)


def test_a_management_token_goes_in_its_header() -> None:
    management = Management(port=9001, prestop_token="m0", prestop_header="X-Prestop")
    info = AppInfo(source="m:app", management=management)
    hook = container(build_manifest(info))["lifecycle"]["preStop"]["httpGet"]
    assert hook["httpHeaders"] == [{"name": "X-Prestop", "value": "m0"}]
    given = build_manifest(info, ManifestOptions(prestop_token="from-a-secret"))
    hook = container(given)["lifecycle"]["preStop"]["httpGet"]
    assert hook["httpHeaders"] == [{"name": "X-Prestop", "value": "from-a-secret"}]
    bearer = AppInfo(source="m:app", management=Management(port=9001, prestop_token="b"))
    hook = container(build_manifest(bearer))["lifecycle"]["preStop"]["httpGet"]
    assert hook["httpHeaders"] == [{"name": "Authorization", "value": "Bearer b"}]
    docs = [Document("-", 1, d) for d in build_manifest(bearer, ManifestOptions(objects=ALL))]
    assert diagnose(docs, bearer)[0] == []


def test_the_apps_token_goes_in_its_header(info: AppInfo) -> None:
    own = replace(info, prestop_header="x-drain")
    hook = container(build_manifest(own, ManifestOptions(prestop_token=TOKEN)))["lifecycle"]
    assert hook["preStop"]["httpGet"]["httpHeaders"] == [{"name": "x-drain", "value": TOKEN}]


def test_a_management_port_the_kubelet_cannot_use_is_refused(info: AppInfo) -> None:
    for management, message in (
        (Management(port=0), "management port is 0"),
        (Management(port=8000), "management port is the server's port 8000"),
        (Management(port=9001, host="127.0.0.1"), "listens on 127.0.0.1"),
    ):
        with pytest.raises(InputError, match=message):
            build_manifest(replace(info, management=management))
    # A port of 0 in the code (tests use it) is fine once the manifest names one.
    named = build_manifest(
        replace(info, management=Management(port=0)), ManifestOptions(management_port=9100)
    )
    assert container(named)["ports"][1] == {"name": "management", "containerPort": 9100}
    assert env(named)["GRACEKIT_MANAGEMENT_PORT"] == "9100"
    with pytest.raises(ValueError, match=r"management_port must be in 1\.\.65535"):
        ManifestOptions(management_port=70000)


APP_TEMPLATE = """
from starlette.applications import Starlette
from starlette.routing import Mount

from gracekit import Lifecycle, ProbeApp, ShutdownTiming

lifecycle = Lifecycle(shutdown=ShutdownTiming(delay={delay}, drain_timeout={drain}))
app = Starlette(routes=[Mount("/probes", ProbeApp(lifecycle))], lifespan=lifecycle.lifespan())
"""


def manifest_of(tmp_path: Path, module: str, *, delay: float, drain: float) -> dict[str, Any]:
    (tmp_path / f"{module}.py").write_text(APP_TEMPLATE.format(delay=delay, drain=drain))
    command = [sys.executable, "-m", "gracekit", "manifest", f"{module}:app",
               "--app-dir", str(tmp_path), "--deployment"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [deployment] = load_all(done.stdout, source="stdout")
    result: dict[str, Any] = deployment
    return result


def test_the_output_changes_with_the_app(tmp_path: Path) -> None:
    base = manifest_of(tmp_path, "timed_a", delay=5, drain=20)
    longer_delay = manifest_of(tmp_path, "timed_b", delay=12, drain=20)
    longer_drain = manifest_of(tmp_path, "timed_c", delay=5, drain=45)
    assert grace([base]) == 27  # no hooks: 5 + 20 + 2
    assert grace([longer_delay]) == 34
    assert grace([longer_drain]) == 52
    assert container([base])["readinessProbe"]["httpGet"]["path"] == "/probes/ready"
    # Only what the timings decide differs.
    stripped = [copy.deepcopy(d) for d in (base, longer_delay)]
    for document in stripped:
        spec = document["spec"]["template"]["spec"]
        del spec["terminationGracePeriodSeconds"], spec["containers"][0]["env"]
        spec["containers"][0]["command"][2] = "APP"
    assert stripped[0] == stripped[1]


def test_the_command_line_prints_yaml_with_the_arithmetic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["manifest", "k8s_app:app", "--app-dir", str(TEST_APPS), "--all", "--name", "shop"]
    assert main([*args, "--prestop-token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "# gracekit manifest, from k8s_app:app\n"
        "# terminationGracePeriodSeconds 31 = preStop 0 + delay 5 + drain 20 + hooks 4 + margin 2\n"
    )
    kinds = [d["kind"] for d in load_all(out, source="stdout")]
    assert kinds == ["Deployment", "Service", "PodDisruptionBudget"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("gracekit manifest: k8s_app:app's preStop endpoint needs a token")
    # With a management port, the hook goes there, with the token given for both.
    assert main([*args, "--management-port", "9001", "--prestop-token", TOKEN]) == 0
    managed = load_all(capsys.readouterr().out, source="stdout")
    assert container(managed)["lifecycle"]["preStop"]["httpGet"]["httpHeaders"] == [
        {"name": "Authorization", "value": f"Bearer {TOKEN}"}
    ]
    assert env(managed)["GRACEKIT_MANAGEMENT_PORT"] == "9001"
    assert env(managed)["GRACEKIT_PRESTOP_TOKEN"] == TOKEN


def test_a_missing_app_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no database configured')\n")
    assert main(["manifest", "broken:app", "--app-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot import 'broken'" in err
    assert "RuntimeError: no database configured" in err
    assert main(["manifest", "k8s_app:nothing", "--app-dir", str(TEST_APPS)]) == 2
    assert "'k8s_app' has no attribute 'nothing'" in capsys.readouterr().err


def test_yaml_needs_the_kubernetes_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["yaml"] = None
        from gracekit.kubernetes._yaml import dump_all
        try:
            dump_all([{}])
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'gracekit[kubernetes]'" in done.stdout, done.stderr


def test_the_timings_without_an_app() -> None:
    documents = build_manifest(AppInfo(timing=ShutdownTiming(delay=1, drain_timeout=4)))
    assert grace(documents) == 12  # 1 + 4 + one default 5 s hook + 2
