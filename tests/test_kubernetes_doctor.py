"""gracekit doctor: the known-bad Deployments in tests/deployments/bad/, each with its planted
problems named in "# planted: RULE PATH" lines, against the app in tests/apps/k8s_app.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gracekit import Management
from gracekit.cli import main
from gracekit.drain.timing import ShutdownTiming
from gracekit.kubernetes import AppInfo, diagnose
from gracekit.kubernetes._yaml import load_all
from gracekit.kubernetes.appinfo import inspect_app, load_app
from gracekit.kubernetes.deployment import Document
from gracekit.kubernetes.errors import InputError
from tests.support.server import ROOT, TEST_APPS

DEPLOYMENTS = ROOT / "tests" / "deployments"
GOOD = DEPLOYMENTS / "good.yaml"
GOOD_MANAGEMENT = DEPLOYMENTS / "good-management.yaml"
BAD = sorted((DEPLOYMENTS / "bad").glob("*.yaml"))
APP = ["--app", "k8s_app:app", "--app-dir", str(TEST_APPS)]


@pytest.fixture(scope="module")
def info() -> AppInfo:
    return inspect_app(load_app("k8s_app:app", app_dir=str(TEST_APPS)), source="k8s_app:app")


def documents(path: Path) -> list[Document]:
    text = path.read_text()
    return [Document(path.name, n, obj) for n, obj in enumerate(load_all(text, source="t"), 1)]


def planted(path: Path) -> set[tuple[str, str]]:
    marks = [line.split()[2:] for line in path.read_text().splitlines() if "# planted:" in line]
    return {(rule, field) for rule, field in marks}


@pytest.mark.parametrize("path", [GOOD, GOOD_MANAGEMENT], ids=["app-port", "management-port"])
def test_the_good_deployments_are_clean(info: AppInfo, path: Path) -> None:
    findings, checked = diagnose(documents(path), info)
    assert checked == 1
    assert findings == []


def test_there_is_a_bad_deployment_for_every_rule() -> None:
    rules = {rule for path in BAD for rule, _ in planted(path)}
    assert rules >= {
        "grace-period", "grace-period-env", "timing-env", "readiness-missing",
        "liveness-is-readiness", "liveness-checks-dependencies", "probe-timeout",
        "startup-probe-missing", "startup-budget", "max-unavailable", "single-replica",
        "prestop-double-delay", "prestop-path", "prestop-token", "probe-path", "probe-port",
        "listen-host", "shell-command", "management-port", "management-exposed",
    }  # fmt: skip


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_planted_problem_is_found_and_nothing_else(path: Path, info: AppInfo) -> None:
    expected = planted(path)
    assert expected, f"{path.name} names no planted problem"
    findings, _ = diagnose(documents(path), info)
    assert {(f.rule, f.path) for f in findings} == expected, findings
    for finding in findings:
        assert finding.problem
        assert finding.why
        assert finding.fix
        assert finding.deployment == "shop"
        assert finding.severity in ("error", "warning")


def test_an_unprotected_prestop_endpoint_is_a_warning(info: AppInfo) -> None:
    unprotected = AppInfo(
        timing=info.timing,
        hooks=info.hooks,
        serves_prestop=True,
        startup_tasks=info.startup_tasks,
        source="unprotected:app",
    )
    obj = documents(DEPLOYMENTS / "bad" / "prestop-token.yaml")
    findings, _ = diagnose(obj, unprotected)
    assert [(f.rule, f.severity) for f in findings] == [("prestop-token", "warning")]


def test_without_an_app_the_flags_and_defaults_stand_in(info: AppInfo) -> None:
    flags_only = AppInfo(hooks=(4.0,))  # delay 5 + drain 20 + hooks 4 + margin 2 = 31
    assert diagnose(documents(GOOD), flags_only)[0] == []
    slower = AppInfo(timing=ShutdownTiming(drain_timeout=30), hooks=(4.0,))
    findings, _ = diagnose(documents(GOOD), slower)
    assert [f.rule for f in findings] == ["grace-period"]
    assert "41 s" in findings[0].problem


def test_an_app_with_no_probe_app_is_said_once() -> None:
    no_probes = AppInfo(health_path=None, source="bare:app", hooks=(4.0,))
    findings, _ = diagnose(documents(GOOD), no_probes)
    assert [(f.rule, f.path) for f in findings] == [
        ("prestop-path", "spec.template.spec.containers[0].lifecycle.preStop.httpGet.path"),
        ("probe-path", "spec.template.spec.containers[0]"),
    ]


def with_management(info: AppInfo, **options: object) -> AppInfo:
    return replace(info, management=Management(port=9001, **options))  # type: ignore[arg-type]


def prestop_headers(docs: list[Document], headers: list[dict[str, str]]) -> list[Document]:
    container = docs[0].obj["spec"]["template"]["spec"]["containers"][0]
    container["lifecycle"]["preStop"]["httpGet"]["httpHeaders"] = headers
    return docs


def test_probes_only_on_the_management_port(info: AppInfo) -> None:
    bare = with_management(replace(info, health_path=None, serves_prestop=False, source="b:app"))
    assert diagnose(documents(GOOD_MANAGEMENT), bare)[0] == []
    # On the app's port, where this app serves nothing of gracekit's: each is said once.
    findings, _ = diagnose(documents(GOOD), bare)
    assert [(f.rule, f.path.rsplit(".", 3)[-3]) for f in findings] == [
        ("probe-port", "preStop"),
        ("probe-port", "startupProbe"),
        ("probe-port", "livenessProbe"),
        ("probe-port", "readinessProbe"),
    ]
    assert "where the app mounts no ProbeApp" in findings[0].problem
    assert findings[0].fix == "use the management port 9001 (or the name of its containerPort)"


def test_a_management_token_must_be_sent_in_its_header(info: AppInfo) -> None:
    guarded = with_management(info, prestop_token="m", prestop_header="X-Prestop")
    [finding] = diagnose(documents(GOOD_MANAGEMENT), guarded)[0]
    assert (finding.rule, finding.severity) == ("prestop-token", "error")
    assert finding.path.endswith("lifecycle.preStop.httpGet.httpHeaders")
    assert "X-Prestop" in finding.fix
    wrong = [{"name": "Authorization", "value": "Bearer m"}]
    assert len(diagnose(prestop_headers(documents(GOOD_MANAGEMENT), wrong), guarded)[0]) == 1
    right = [{"name": "x-prestop", "value": "m"}]
    assert diagnose(prestop_headers(documents(GOOD_MANAGEMENT), right), guarded)[0] == []
    exposed = diagnose(documents(DEPLOYMENTS / "bad" / "management-exposed.yaml"), guarded)[0]
    assert {f.rule for f in exposed} == {"prestop-token", "management-exposed"}
    assert all("only its token guards" in f.why for f in exposed if f.rule != "prestop-token")


def test_the_apps_token_in_a_header_of_its_own(info: AppInfo) -> None:
    own = replace(info, prestop_header="x-drain")
    [finding] = diagnose(documents(GOOD), own)[0]  # it sends Authorization
    assert finding.rule == "prestop-token"
    assert finding.fix == "add httpHeaders: [{name: x-drain, value: <the prestop_token>}]"
    docs = prestop_headers(documents(GOOD), [{"name": "X-Drain", "value": "t0ken"}])
    assert diagnose(docs, own)[0] == []


def test_a_management_port_the_kubelet_cannot_reach_or_name(info: AppInfo) -> None:
    loopback = with_management(info, host="127.0.0.1")
    findings, _ = diagnose(documents(GOOD_MANAGEMENT), loopback)
    assert [(f.rule, f.path) for f in findings] == [
        ("listen-host", "spec.template.spec.containers[0]")
    ]
    assert "listens on 127.0.0.1" in findings[0].problem
    assert diagnose(documents(GOOD), loopback)[0] == [], "nothing is sent there"
    anywhere = replace(info, management=Management(port=0))
    findings, _ = diagnose(documents(GOOD), anywhere)
    assert [(f.rule, f.path) for f in findings] == [
        ("management-port", "spec.template.spec.containers[0].ports")
    ]
    # gracekit run --management-port names it.
    assert diagnose(documents(GOOD_MANAGEMENT), anywhere)[0] == []


def test_a_service_is_matched_by_namespace_and_labels(info: AppInfo) -> None:
    path = DEPLOYMENTS / "bad" / "management-exposed.yaml"
    findings, _ = diagnose(documents(path), info)
    # Each finding names the Service's document, not the Deployment's.
    assert sorted((f.source, f.document) for f in findings) == [(path.name, 2), (path.name, 3)]
    assert {f.deployment for f in findings} == {"shop"}
    docs = documents(path)
    for doc in docs[1:3]:
        doc.obj["metadata"]["namespace"] = "elsewhere"
    assert diagnose(docs, info)[0] == []
    # Without a management port nothing is one.
    plain = diagnose(documents(path), replace(info, management=None))
    assert [f.rule for f in plain[0]] == ["management-exposed", "management-exposed"]


def test_the_management_port_from_the_flag_the_env_or_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD_MANAGEMENT.read_text()
    without = text.replace(',\n                    --management-port, "9001"]', "]")
    assert without != text
    monkeypatch.setattr(sys, "stdin", io.StringIO(without))
    assert main(["doctor", "--hooks", "4", "--json"]) == 1  # the probes go to no known port
    report = json.loads(capsys.readouterr().out)
    # The three probes and the hook (which sends a token, as the app's endpoint would want).
    assert [f["rule"] for f in report["findings"]].count("probe-port") == 4
    assert {f["rule"] for f in report["findings"]} == {"probe-port"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(without))
    assert main(["doctor", "--hooks", "4", "--management-port", "9001"]) == 0
    assert capsys.readouterr().out == "1 Deployment checked: no problems found\n"
    in_env = without.replace(
        '            - {name: GRACEKIT_GRACE_PERIOD, value: "31"}\n',
        '            - {name: GRACEKIT_GRACE_PERIOD, value: "31"}\n'
        '            - {name: GRACEKIT_MANAGEMENT_PORT, value: "9001"}\n',
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(in_env))
    # The container's env overrides the flag, which stands for the code.
    assert main(["doctor", "--hooks", "4", "--management-port", "9002"]) == 0
    assert capsys.readouterr().out == "1 Deployment checked: no problems found\n"
    with pytest.raises(SystemExit):
        main(["doctor", str(GOOD_MANAGEMENT), "--management-port", "0"])
    assert "must be a port from 1 to 65535, got '0'" in capsys.readouterr().err


def test_replicas_defaults_and_percentages(info: AppInfo) -> None:
    (deployment, pdb) = (doc.obj for doc in documents(GOOD))
    spec = deployment["spec"]
    spec["replicas"] = 4
    spec["strategy"]["rollingUpdate"] = {"maxUnavailable": "75%", "maxSurge": 0}
    assert diagnose([Document("t", 1, deployment)], info)[0] == []  # 3 of 4 may go, 1 stays
    spec["strategy"]["rollingUpdate"] = {"maxUnavailable": "0%", "maxSurge": "0%"}
    spec["replicas"] = 1  # both 0: the controller makes maxUnavailable 1, so none stays
    findings, _ = diagnose([Document("t", 1, deployment), Document("t", 2, pdb)], info)
    assert [f.rule for f in findings] == ["max-unavailable"]


def test_the_app_container_is_found_among_sidecars(info: AppInfo) -> None:
    deployment = documents(GOOD)[0].obj
    containers = deployment["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "proxy", "image": "envoy"})
    docs = [Document("t", 1, deployment), *documents(GOOD)[1:]]
    assert diagnose(docs, info)[0] == []
    del containers[1]["readinessProbe"]
    findings, _ = diagnose(docs, info)
    assert [f.path for f in findings] == ["spec.template.spec.containers[1].readinessProbe"]
    with pytest.raises(InputError, match="no container 'web'"):
        diagnose(docs, info, container="web")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [", "not valid YAML at line 1"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n", "no Deployment in - "),
        ("- a\n- b\n", "document 1 is a list, not a Kubernetes object"),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec: {}\n",
            "has no spec.template.spec.containers",
        ),
        ("", "- holds no YAML documents"),
    ],
)
def test_unusable_input_gets_a_message_and_status_2(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["doctor"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_json_report_over_files_and_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = DEPLOYMENTS / "bad" / "probe-port.yaml"
    # good.yaml holds two documents: the bad Deployment is the third in the stream.
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD.read_text() + "---\n" + bad.read_text()))
    assert main(["doctor", "-", "--json", *APP]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 2
    assert (report["errors"], report["warnings"]) == (1, 0)
    [finding] = report["findings"]
    assert finding["source"] == "-"
    assert finding["document"] == 3
    assert finding["rule"] == "probe-port"
    assert set(finding) == {
        "rule", "severity", "path", "problem", "why", "fix", "source", "document", "deployment",
    }  # fmt: skip


def test_warnings_alone_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(DEPLOYMENTS / "bad" / "shell-command.yaml"), *APP]) == 0
    out = capsys.readouterr().out
    assert "warning [shell-command]" in out
    assert out.endswith("1 Deployment checked: 0 errors, 1 warning\n")


def test_doctor_as_a_process() -> None:
    command = [sys.executable, "-m", "gracekit", "doctor", *APP]
    clean = subprocess.run([*command, str(GOOD)], capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout == "1 Deployment checked: no problems found\n"
    # Two files, each with one problem (the PodDisruptionBudgets of all files count for all).
    bad = [str(DEPLOYMENTS / "bad" / f"{name}.yaml") for name in ("probe-port", "listen-host")]
    failing = subprocess.run([*command, *bad], capture_output=True, text=True, timeout=60)
    assert failing.returncode == 1, failing.stderr
    assert failing.stdout.endswith("2 Deployments checked: 2 errors, 0 warnings\n")
    assert failing.stdout.count("    why: ") == 2
    assert failing.stdout.count("    fix: ") == 2


def test_timing_flags_describe_the_app_without_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(GOOD), "--hooks", "4"]) == 0
    assert capsys.readouterr().out == "1 Deployment checked: no problems found\n"
    assert main(["doctor", str(GOOD), "--hooks", "4", "--drain-timeout", "30"]) == 1
    out = capsys.readouterr().out
    assert "error [grace-period]" in out
    assert "may take 41 s (preStop 0 + delay 5 + drain 30 + hooks 4 + margin 2)" in out


def test_odd_shapes_inside_a_deployment_do_not_break_the_rules(info: AppInfo) -> None:
    deployment = documents(GOOD)[0].obj
    spec = deployment["spec"]["template"]["spec"]
    spec["containers"][0]["command"] = "gracekit run k8s_app:app"  # a string, not a list
    spec["containers"][0]["env"] = "GRACEKIT_GRACE_PERIOD=31"
    spec["containers"][0]["livenessProbe"] = ["not", "a", "mapping"]
    spec["terminationGracePeriodSeconds"] = "31"
    deployment["spec"]["strategy"] = "fast"
    findings, _ = diagnose([Document("t", 1, deployment), *documents(GOOD)[1:]], info)
    # The grace period that is not a number counts as Kubernetes' default of 30 s.
    assert [f.rule for f in findings] == ["grace-period"]
