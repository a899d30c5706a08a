"""charts/parley rendered offline by the real Helm engine (helm-python-sdk, no helm binary, no cluster) for
default, production-like and minimal values; every rendered object validated against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields fail) of the oldest and newest Kubernetes the chart
supports, CRDs (ServiceMonitor, KafkaTopic) skipped; and what operators rely on checked object by object."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from helm_python import Chart, HelmRenderError, lint

from services.core.topics import Topic
from tests.chart_render import CHART, render

KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CUSTOM_KINDS = {"ServiceMonitor", "KafkaTopic"}
STATELESS = ("gateway", "licence", "rooms", "recorder", "billing", "webhooks")

REQUIRED = {
    "kafka": {"bootstrapServers": "kafka-0.kafka:9092"},
    "secrets": {
        "databaseUrl": "postgresql+asyncpg://parley:secret@postgres:5432/parley",
        "licenceMasterKey": "c2VhbGluZyBrZXkgb2YgYXQgbGVhc3QgMzIgcmFuZG9tIGJ5dGVz",
        "webhooksMasterKey": "d2ViaG9va3Mga2V5IG9mIGF0IGxlYXN0IDMyIHJhbmRvbSBieXRlcw==",
    },
}
PRODUCTION = {
    "image": {"repository": "registry.example/parley", "tag": "0.1.0"},
    "kafka": {
        "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "kafka-user"},
        "tls": {"caSecret": "kafka-ca"},
        "topicCreation": "strimzi",
        "strimzi": {"cluster": "main"},
    },
    "secrets": {"existingSecret": "parley-secrets"},
    "objectStore": {"url": "s3://recordings/parley", "region": "eu-west-1", "existingSecret": "s3"},
    "gateway": {"iceServers": [{"urls": ["stun:stun.example.org:3478"]}]},
    "licence": {"autoscaling": {"enabled": True}},
    "recorder": {"storage": {"existingClaim": "recordings"}},
    "relay": {
        "nodeSelector": {"parley.dev/media": "true"},
        "announcedAddress": "203.0.113.10",
        "workers": "auto",
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "calls.example.com",
        "tls": {"secretName": "tls"},
    },
    "coturn": {"enabled": True, "externalAddress": "203.0.113.20", "existingSecret": "turn"},
    "monitoring": {"serviceMonitor": {"enabled": True}, "dashboard": {"enabled": True}},
    "networkPolicy": {"enabled": True},
}
MINIMAL = {
    **REQUIRED,
    "environment": "development",
    "secrets": {"databaseUrl": REQUIRED["secrets"]["databaseUrl"]},
    "kafka": {**REQUIRED["kafka"], "topicCreation": "none"},
    "gateway": {"replicas": 1, "autoscaling": {"enabled": False}, "pdb": {"enabled": False}},
    "licence": {"replicas": 1, "pdb": {"enabled": False}},
    "migrations": {"enabled": False},
}
VALUES = {"default": REQUIRED, "production": PRODUCTION, "minimal": MINIMAL}


@pytest.fixture(scope="module", params=sorted(VALUES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VALUES[request.param])


def of_kind(objects: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (item for item in objects if item["kind"] == kind)


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (item for item in objects if item["kind"] in {"Deployment", "DaemonSet", "Job"})


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, objects = rendered
    assert objects
    for item in objects:
        if item["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(item, version, strict=True)


@pytest.mark.parametrize("name", sorted(VALUES))
def test_helm_lint_finds_no_error(name: str) -> None:
    report = lint(CHART, VALUES[name], strict=True)
    errors = [message for message in report["messages"] if message["severity"] >= 2]
    assert not errors and not report["errors"], report


def test_every_stateless_service_is_a_deployment_with_its_service(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployments = {item["metadata"]["name"] for item in of_kind(objects, "Deployment")}
    services = {item["metadata"]["name"] for item in of_kind(objects, "Service")}
    for name in STATELESS:
        assert f"parley-{name}" in deployments and f"parley-{name}" in services


def test_pods_run_as_non_root_on_a_read_only_root_with_probes_and_resources(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["resources"]["requests"], where
            if workload["kind"] != "Job" and "coturn" not in where:
                assert container["livenessProbe"] and container["readinessProbe"], where


def test_liveness_never_asks_for_readiness(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Liveness is /livez (the process answers); readiness asks the dependencies (/readyz or the gRPC
    health service parley.readiness)."""
    _, objects = rendered
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if "livenessProbe" not in container:
                continue
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
            readiness = container["readinessProbe"]
            assert readiness.get("httpGet", {}).get("path") == "/readyz" or (
                readiness["grpc"]["service"] == "parley.readiness"
            )


def test_config_changes_restart_the_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for workload in (*of_kind(objects, "Deployment"), *of_kind(objects, "DaemonSet")):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secret"} <= annotations.keys(), workload["metadata"]["name"]


def test_a_changed_setting_changes_the_checksum() -> None:
    def checksum(values: dict[str, Any]) -> str:
        gateway = next(
            d for d in of_kind(render(values), "Deployment") if d["metadata"]["name"] == "parley-gateway"
        )
        return str(gateway["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(REQUIRED) != checksum({**REQUIRED, "logLevel": "DEBUG"})


def deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] == name)


def test_one_room_manager_in_memory_without_redis(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    rooms = deployment(objects, "parley-rooms")
    assert rooms["spec"]["replicas"] == 1 and rooms["spec"]["strategy"]["type"] == "Recreate"
    scaled = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(objects, "HorizontalPodAutoscaler")}
    assert "parley-rooms" not in scaled
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "parley-config")
    assert "PARLEY_ROOMS__STORE" not in config["data"]


def test_two_room_managers_on_redis_one_standing_by_out_of_the_service() -> None:
    objects = render({**REQUIRED, "redis": {"url": "redis://redis:6379/0"}, "rooms": {"replicas": 2}})
    rooms = deployment(objects, "parley-rooms")
    # A standby is never ready while the leader lives: a rolling update would wait for it forever.
    assert rooms["spec"]["replicas"] == 2 and rooms["spec"]["strategy"]["type"] == "Recreate"
    (container,) = rooms["spec"]["template"]["spec"]["containers"]
    # Readiness is the gRPC health a standby does not serve until it leads; liveness is /livez, which it does.
    assert container["readinessProbe"]["grpc"]["service"] == "parley.readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "parley-config")
    assert config["data"]["PARLEY_ROOMS__STORE"] == "redis"
    assert config["data"]["PARLEY_ROOMS__REDIS_URL"] == "redis://redis:6379/0"
    with pytest.raises(HelmRenderError, match=r"rooms\.replicas > 1 needs redis\.url"):
        render({**REQUIRED, "rooms": {"replicas": 2}})


def test_billing_and_webhooks_run_two_replicas_by_default() -> None:
    objects = render(REQUIRED)
    for name in ("parley-billing", "parley-webhooks"):
        assert deployment(objects, name)["spec"]["replicas"] == 2


def test_relays_on_host_network_wait_for_their_drain(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    values = VALUES[name]
    relay = next(d for d in of_kind(objects, "DaemonSet") if d["metadata"]["name"] == "parley-relay")
    pod = relay["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    drain = values.get("relay", {}).get("drainTimeoutSeconds", 120)
    assert pod["terminationGracePeriodSeconds"] > drain
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    listen = values.get("relay", {}).get("listenAddress")
    if listen:
        assert "RELAY_ADDRESS" not in env
    else:
        assert env["RELAY_ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    address = env["PARLEY_RELAY__ADVERTISED_GRPC_ADDRESS"]["value"]
    assert address.startswith(f"{listen or '$(RELAY_ADDRESS)'}:")
    assert env["PARLEY_RELAY__LISTEN_ADDRESS"]["value"] == (listen or "$(RELAY_ADDRESS)")
    assert env["PARLEY_RELAY__WORKERS"]["value"] == str(values.get("relay", {}).get("workers", 1))
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "parley-config")
    assert config["data"]["PARLEY_RELAY__DRAIN_TIMEOUT_S"] == str(drain)


def test_migrations_hook_before_install_and_upgrade(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    jobs = list(of_kind(objects, "Job"))
    if name == "minimal":
        assert not jobs
        return
    (job,) = jobs
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["services.cli.main", "migrate"]
    # Migration 0003 seals the webhook secrets an earlier version kept in plain text with this key.
    env = {item["name"]: item for item in container["env"]}
    assert env["PARLEY_WEBHOOKS__MASTER_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True
    if name == "default":
        hook_secret = next(s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == "parley-migrate")
        assert (
            hook_secret["stringData"]["PARLEY_WEBHOOKS__MASTER_KEY"]
            == REQUIRED["secrets"]["webhooksMasterKey"]
        )


def test_production_values_render_their_options() -> None:
    objects = render(PRODUCTION)
    kinds = {item["kind"] for item in objects}
    assert {"Ingress", "ServiceMonitor", "KafkaTopic", "NetworkPolicy", "HorizontalPodAutoscaler"} <= kinds
    assert not list(of_kind(objects, "Secret")), "an existing Secret is used, none is made"
    topics = {topic["spec"]["topicName"] for topic in of_kind(objects, "KafkaTopic")}
    assert topics == {topic.value for topic in Topic}
    coturn = next(d for d in of_kind(objects, "DaemonSet") if d["metadata"]["name"] == "parley-coturn")
    assert coturn["spec"]["template"]["spec"]["hostNetwork"] is True
    dashboard = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "parley-dashboard")
    assert '"title": "Parley"' in dashboard["data"]["parley.json"]


def test_the_charts_topics_are_the_catalogues() -> None:
    with Chart.load(CHART) as chart:
        assert chart.values["kafka"]["topics"] == [topic.value for topic in Topic]


def test_missing_required_values_stop_the_render_with_their_name() -> None:
    with pytest.raises(HelmRenderError, match=r"kafka\.bootstrapServers"):
        render({"secrets": REQUIRED["secrets"]})
    without_webhooks_key = {k: v for k, v in REQUIRED["secrets"].items() if k != "webhooksMasterKey"}
    with pytest.raises(HelmRenderError, match=r"secrets\.webhooksMasterKey is required in production"):
        render({**REQUIRED, "secrets": without_webhooks_key})


def test_a_broken_template_fails_the_render(tmp_path: Path) -> None:
    """What the tests above stand on: a template that does not render is an error, not an empty file."""
    broken = tmp_path / "parley"
    shutil.copytree(CHART, broken)
    deployments = broken / "templates" / "deployments.yaml"
    deployments.write_text(deployments.read_text().replace("{{- end }}", "", 1))
    with pytest.raises(HelmRenderError):
        render(REQUIRED, chart=broken)
