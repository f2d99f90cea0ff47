"""The orders example's Kubernetes folder and Dockerfile: valid, consistent with each other, and
clean for gracekit doctor against the app itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest

from gracekit.kubernetes._yaml import load_all
from gracekit.kubernetes.container import parse_command
from tests.support.server import EXAMPLES, ROOT

ORDERS = EXAMPLES / "orders"
K8S = ORDERS / "k8s"
FILES = sorted(K8S.glob("*.yaml"))
PRESTOP_TOKEN = "orders-prestop-change-me"
CORE_KINDS = {"Deployment", "Service", "PodDisruptionBudget"}


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in FILES:
        for obj in load_all(path.read_text(), source=path.name):
            found[(obj["kind"], obj["metadata"]["name"])] = obj
    return found


OBJECTS = objects()
DEPLOYMENT = OBJECTS[("Deployment", "orders")]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
PORTS = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}


def gracekit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    return subprocess.run(
        [sys.executable, "-m", "gracekit", *args, "--app-dir", str(ORDERS)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**environ, **(env or {})},
    )  # fmt: skip


def test_the_folder_holds_what_a_deployment_needs() -> None:
    assert set(OBJECTS) == {
        ("Deployment", "orders"),
        ("Service", "orders"),
        ("PodDisruptionBudget", "orders"),
        ("DestinationRule", "orders"),
        ("VirtualService", "orders"),
        ("Canary", "orders"),
        ("MetricTemplate", "orders-error-rate"),
        ("MetricTemplate", "orders-latency-p99"),
    }
    assert DEPLOYMENT["spec"]["replicas"] == 3
    assert set(CONTAINER) >= {"startupProbe", "livenessProbe", "readinessProbe", "lifecycle"}
    assert set(CONTAINER["resources"]["requests"]) == {"cpu", "memory"}


def test_the_probes_and_the_hook_use_the_management_port_which_no_service_exposes() -> None:
    assert PORTS == {"http": 8000, "management": 9001}
    for field in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert CONTAINER[field]["httpGet"]["port"] == "management", field
    hook = CONTAINER["lifecycle"]["preStop"]["httpGet"]
    assert hook == {
        "path": "/health/prestop",
        "port": "management",
        "httpHeaders": [{"name": "Authorization", "value": f"Bearer {PRESTOP_TOKEN}"}],
    }, "the management port binds 0.0.0.0: the hook sends the app's token"
    token_env = {e["name"]: e for e in CONTAINER["env"]}["GRACEKIT_PRESTOP_TOKEN"]
    assert token_env["valueFrom"]["secretKeyRef"] == {"name": "orders", "key": "prestop-token"}
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(PORTS["management"])
    # Out of the sidecar's reach: the kubelet's hook is not rewritten, and would meet mTLS.
    assert annotations["traffic.sidecar.istio.io/excludeInboundPorts"] == str(PORTS["management"])
    service = OBJECTS[("Service", "orders")]["spec"]
    assert [port["targetPort"] for port in service["ports"]] == ["http"]
    canary = OBJECTS[("Canary", "orders")]["spec"]["service"]
    assert canary["targetPort"] == "http", "Flagger writes the Services from it"


@pytest.mark.parametrize("version", ["1.30", "1.34"])
def test_the_core_objects_validate(version: str) -> None:
    core = [obj for (kind, _), obj in OBJECTS.items() if kind in CORE_KINDS]
    assert len(core) == 3
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)


def doctor(text: str) -> list[str]:
    """The rules the doctor reports for *text* against the app (it must find errors)."""
    process = subprocess.run(
        [sys.executable, "-m", "gracekit", "doctor", "--app", "app:app",
         "--app-dir", str(ORDERS), "--json"],
        input=text, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert process.returncode == 1, process.stdout + process.stderr
    return [f["rule"] for f in json.loads(process.stdout)["findings"]]


def test_doctor_finds_nothing_and_reads_the_services_and_the_containers_env() -> None:
    files = [str(path) for path in FILES]
    clean = gracekit("doctor", *files, "--app", "app:app", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert (report["checked"], report["findings"]) == (1, [])
    deployment = (K8S / "deployment.yaml").read_text()
    service = (K8S / "service.yaml").read_text()
    # A Service that publishes the management port as well.
    exposed = service + "    - {name: admin, port: 9001, targetPort: management}\n"
    assert doctor(deployment + "---\n" + exposed) == ["management-exposed"]
    # The container's env moves the management port away from where the probes and the hook
    # go: the doctor reads the app as the container runs it.
    moved = deployment.replace(
        "            - name: ORDERS_REDIS_URL\n",
        '            - {name: GRACEKIT_MANAGEMENT_PORT, value: "9002"}\n'
        "            - name: ORDERS_REDIS_URL\n",
    )
    assert moved != deployment
    assert doctor(moved) == ["probe-port"] * 4


def test_the_deployment_has_what_gracekit_manifest_computes() -> None:
    done = gracekit(
        "manifest", "app:app", "--name", "orders", "--all", "--prestop-token", PRESTOP_TOKEN
    )
    assert done.returncode == 0, done.stderr
    computed, service, _ = load_all(done.stdout, source="manifest")
    spec = computed["spec"]["template"]["spec"]
    assert POD["terminationGracePeriodSeconds"] == spec["terminationGracePeriodSeconds"] == 32
    [expected] = spec["containers"]
    for field in ("startupProbe", "livenessProbe", "readinessProbe", "lifecycle", "command",
                  "ports"):  # fmt: skip
        assert CONTAINER[field] == expected[field], field
    assert {"name": "GRACEKIT_GRACE_PERIOD", "value": "32"} in CONTAINER["env"]
    assert service["spec"]["ports"] == OBJECTS[("Service", "orders")]["spec"]["ports"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ORDERS / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_runs_the_deployments_command_as_pid_1_and_not_as_root() -> None:
    instructions = dockerfile_instructions()
    assert not [arg for op, arg in instructions if op == "ENTRYPOINT"]
    [cmd] = [arg for op, arg in instructions if op == "CMD"]
    command = json.loads(cmd)  # exec form: a JSON array, no shell between SIGTERM and Python
    assert isinstance(command, list)
    assert command == CONTAINER["command"]
    server = parse_command(command)
    assert server is not None
    assert (server.server, server.host, server.via_shell) == ("gracekit run", "0.0.0.0", False)
    assert server.port == PORTS["http"]
    [exposed] = [arg.split() for op, arg in instructions if op == "EXPOSE"]
    assert exposed == [str(PORTS["http"]), str(PORTS["management"])]
    [user] = [arg for op, arg in instructions if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit(), "runAsNonRoot can only verify a numeric user"
    assert int(uid) != 0
    assert POD["securityContext"]["runAsNonRoot"] is True
    for op, arg in instructions:
        if op == "COPY":
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source  # the build context is the repo root


def test_the_mesh_keeps_the_sidecar_for_the_whole_shutdown() -> None:
    annotation = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    [config] = load_all(annotation["proxy.istio.io/config"], source="annotation")
    drain = config["terminationDrainDuration"]
    assert drain.endswith("s")
    # The sidecar must carry the delay, the drain and the hooks (5 + 20 + 5 s), within the
    # grace period.
    assert 30 <= int(drain[:-1]) <= POD["terminationGracePeriodSeconds"]


def test_retries_are_safe_for_each_kind_of_route() -> None:
    service = OBJECTS[("VirtualService", "orders")]
    assert service["spec"]["hosts"] == [OBJECTS[("Service", "orders")]["metadata"]["name"]]
    routes = {route["name"]: route for route in service["spec"]["http"]}
    reads, writes = routes["reads"], routes["writes"]
    assert {m["method"]["exact"] for m in reads["match"]} == {"GET", "HEAD"}
    assert set(reads["retries"]["retryOn"].split(",")) == {
        "connect-failure",
        "refused-stream",
        "503",
    }
    assert "match" not in writes  # everything else, POST included
    assert set(writes["retries"]["retryOn"].split(",")) == {"connect-failure", "refused-stream"}
    rule = OBJECTS[("DestinationRule", "orders")]["spec"]
    assert rule["host"] == "orders"
    assert set(rule["trafficPolicy"]) == {"connectionPool", "outlierDetection"}


def test_the_canary_repeats_the_mesh_settings_and_uses_the_metrics() -> None:
    canary = OBJECTS[("Canary", "orders")]["spec"]
    assert canary["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (
        canary["service"]["trafficPolicy"]
        == OBJECTS[("DestinationRule", "orders")]["spec"]["trafficPolicy"]
    )
    assert "503" not in canary["service"]["retries"]["retryOn"]  # it applies to writes too
    queries = {}
    for metric in canary["analysis"]["metrics"]:
        template = OBJECTS[("MetricTemplate", metric["templateRef"]["name"])]
        queries[metric["name"]] = " ".join(template["spec"]["query"].split())
    assert "http_requests_total{" in queries["error-rate"]
    assert 'status=~"5.."' in queries["error-rate"]
    assert queries["error-rate"].count("sum(rate(http_requests_total{") == 2
    assert queries["latency-p99"].startswith(
        "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{"
    )
    assert queries["latency-p99"].endswith("by (le) )")
