"""The chart run for real on this machine: the image `make image` built (PARLEY_IMAGE), the chart rendered
for one node (host network, every listener on 127.0.0.1; Kafka, PostgreSQL at 127.0.0.1), its
Deployments, ConfigMap and Secret played with `podman kube play`, every pod's readiness waited for, a
call made through it (protocol v1 on the gateway pod, aiortc media through the relay pod), and all of it
torn down. `make test-system` runs it; it is not part of `make test`.

What podman 4.3 (Debian bookworm) does not play is adapted here, nothing else: the relays' DaemonSet is
played as a Pod of its template (podman plays no DaemonSets); containers lose their `ports` list (on the
host network it only documents the ports, and podman refuses port mappings there); the Secret becomes a
podman secret (kube play reads `secretRef`s from podman's secret store); the hook Job is left out
(podman plays no Jobs; the services migrate their own tables at start, which the Job only does first).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub

from services.core.embedded_broker import free_port
from tests.chart_render import render
from tests.integration.licence_helpers import create_app
from tests.integration.media_call import call_in_a_room
from tests.postgres import fresh_database_url

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("PARLEY_IMAGE", "localhost/parley:dev")
PLAYED_KINDS = {"Deployment", "ConfigMap"}
READY_TIMEOUT_S = 240.0
SERVICES = ("licence", "rooms", "relay", "recorder", "billing", "webhooks", "gateway")


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr or result.stdout}")
    return result


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def one_node_values(kafka: str, database_url: str, ports: dict[str, int]) -> dict[str, Any]:
    repository, _, tag = IMAGE.rpartition(":")
    single = {"replicas": 1, "autoscaling": {"enabled": False}, "pdb": {"enabled": False}}
    values: dict[str, Any] = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "hostNetwork": True,
        "listenAddress": "127.0.0.1",
        "logFormat": "console",
        "kafka": {"bootstrapServers": kafka, "topicCreation": "none"},
        "secrets": {
            "databaseUrl": database_url,
            "licenceMasterKey": base64.b64encode(secrets.token_bytes(32)).decode(),
            "webhooksMasterKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
        "migrations": {"enabled": False},
        "extraEnv": {
            "PARLEY_RELAY__CANDIDATE_NETWORKS": '["127.0.0.0/8"]',
            "PARLEY_RECORDER__LISTEN_ADDRESS": "127.0.0.1",
        },
        "relay": {
            "grpcPort": ports["relay"],
            "opsPort": ports["relay-ops"],
            "listenAddress": "127.0.0.1",
            "drainTimeoutSeconds": 5,
        },
        "gateway": {**single, "grpcPort": ports["gateway"], "httpPort": ports["gateway-http"]},
    }
    for name in ("licence", "rooms", "recorder", "billing", "webhooks"):
        values[name] = {**single, "grpcPort": ports[name], "opsPort": ports[f"{name}-ops"]}
    return values


def playable(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what kube play takes, the Secrets to create in podman's store)."""
    played = []
    secrets_made = []
    for item in objects:
        kind = item["kind"]
        if kind in {"Deployment", "DaemonSet"}:
            for container in item["spec"]["template"]["spec"]["containers"]:
                container.pop("ports", None)
        if kind == "DaemonSet":
            template = item["spec"]["template"]
            played.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": item["metadata"]["name"], "labels": template["metadata"]["labels"]},
                    "spec": template["spec"],
                }
            )
        elif kind == "Secret":
            # podman 4.3 reads a secret as a JSON object of base64 values (Go's map[string][]byte).
            data = {
                key: base64.b64encode(value.encode()).decode() for key, value in item["stringData"].items()
            }
            secrets_made.append({"name": item["metadata"]["name"], "data": data})
        elif kind in PLAYED_KINDS:
            played.append(item)
    return played, secrets_made


@pytest.fixture
def podman_ready() -> None:
    assert shutil.which("podman"), "podman missing: `make test-system` installs podman, runc, catatonit"
    assert podman("image", "exists", IMAGE, check=False).returncode == 0, f"{IMAGE} missing: `make image`"


class PlayedChart:
    def __init__(self, directory: Path, objects: list[dict[str, Any]], release: str) -> None:
        self._release = release
        self.file = directory / "parley.yaml"
        played, self._secrets = playable(objects)
        self.file.write_text(yaml.safe_dump_all(played))
        self._directory = directory

    def play(self) -> None:
        for secret in self._secrets:
            path = self._directory / f"{secret['name']}.json"
            path.write_text(json.dumps(secret["data"]))
            podman("secret", "create", secret["name"], str(path))
        podman("kube", "play", "--network", "host", str(self.file), timeout=600)

    def logs(self) -> str:
        found = podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        mine = [name for name in found if name.startswith(self._release)]
        return "\n".join(
            f"--- {name}\n{podman('logs', '--tail', '15', name, check=False).stderr[-3000:]}" for name in mine
        )

    def tear_down(self) -> None:
        podman("kube", "down", str(self.file), check=False, timeout=300)
        # A play that failed half-way leaves pods kube down does not know.
        left = podman("pod", "ps", "--format", "{{.Name}}", check=False).stdout.split()
        mine = [name for name in left if name.startswith(self._release)]
        if mine:
            podman("pod", "rm", "--force", *mine, check=False, timeout=300)
        for secret in self._secrets:
            podman("secret", "rm", secret["name"], check=False)


@pytest.fixture
async def one_node(kafka: str, tmp_path: Path, podman_ready: None) -> Any:
    run = uuid.uuid4().hex[:8]
    release = f"parley-{run}"
    names = [*SERVICES, "gateway-http", *(f"{name}-ops" for name in SERVICES if name != "gateway")]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    async with fresh_database_url("kubeplay") as database_url:
        objects = render(one_node_values(kafka, database_url, ports), release=release, namespace="default")
        chart = PlayedChart(tmp_path, objects, release)
        started = time.monotonic()
        try:
            await asyncio.to_thread(chart.play)
            yield ports, chart, started
        finally:
            await asyncio.to_thread(chart.tear_down)
    assert not [name for name in podman("pod", "ps", "--format", "{{.Name}}").stdout.split() if run in name]


async def wait_ready(http: httpx.AsyncClient, ports: dict[str, int], chart: PlayedChart) -> None:
    urls = {name: f"http://127.0.0.1:{ports[name + '-ops']}/readyz" for name in SERVICES if name != "gateway"}
    urls["gateway"] = f"http://127.0.0.1:{ports['gateway-http']}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = dict(urls)
    while waiting:
        for name, url in list(waiting.items()):
            try:
                if (await http.get(url)).status_code == 200:
                    del waiting[name]
            except httpx.TransportError:
                pass
        if waiting and time.monotonic() > deadline:
            logs = await asyncio.to_thread(chart.logs)
            raise AssertionError(f"not ready after {READY_TIMEOUT_S:.0f}s: {sorted(waiting)}\n{logs}")
        await asyncio.sleep(1.0)


async def test_the_chart_runs_a_call_on_podman(one_node: Any) -> None:
    ports, chart, started = one_node
    async with httpx.AsyncClient(timeout=5) as http:
        await wait_ready(http, ports, chart)
        ready_after_s = time.monotonic() - started
        health = (await http.get(f"http://127.0.0.1:{ports['gateway-http']}/healthz")).json()
        assert health["status"] == "SERVING", health
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['licence']}") as channel:
        app = await create_app(LicenceServiceStub(channel), "kube-play")
    ws_url = f"ws://127.0.0.1:{ports['gateway-http']}/ws/v1"
    async with call_in_a_room(app, ws_url) as (_, _, call):
        # Media still flowing after the first frame call_in_a_room waited for.
        assert await call.video_frame() is not None
    print(f"pods ready {ready_after_s:.0f}s after kube play started")
