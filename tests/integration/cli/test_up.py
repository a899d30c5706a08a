"""`parley up` as a user runs it: a real process tree of the broker and seven services."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import httpx

from services.core.config import ServiceName
from services.core.embedded_broker import EmbeddedBroker, free_port, free_port_block
from services.core.topics import Topic
from tests.integration.cli.running import PARLEY, RunningPlatform, processes_with_marker, run_parley


def test_up_prints_every_service_and_healthz_lists_all_seven(platform: RunningPlatform) -> None:
    for name in ServiceName:
        assert f"  {name.value} " in platform.banner
    response = httpx.get(f"{platform.url}/healthz")
    assert response.status_code == 200
    assert response.json()["services"] == {name.value: "SERVING" for name in ServiceName}
    assert (platform.data_dir / "db" / "billing.db").exists()
    assert (platform.data_dir / "recordings").is_dir()

    status = subprocess.run(
        [*PARLEY, "status", "--url", platform.url], capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 0, status.stderr
    for name in ServiceName:
        assert name.value in status.stdout
    as_json = subprocess.run(
        [*PARLEY, "status", "--json", "--url", platform.url], capture_output=True, text=True, timeout=30
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "status": "SERVING",
        "services": {name.value: "SERVING" for name in ServiceName},
    }


def test_version_prints_the_installed_version() -> None:
    result = subprocess.run([*PARLEY, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == f"parley {version('parley')}"


def test_a_killed_service_turns_healthz_503_naming_it(platform: RunningPlatform) -> None:
    os.kill(platform.service_pid(ServiceName.ROOMS), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = httpx.get(f"{platform.url}/healthz")
        if response.status_code == 503:
            break
        time.sleep(0.2)
    assert response.status_code == 503
    services = response.json()["services"]
    assert services["rooms"] != "SERVING"
    assert {name for name, state in services.items() if state != "SERVING"} == {"rooms"}
    status = subprocess.run(
        [*PARLEY, "status", "--url", platform.url], capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 1


def test_ctrl_c_stops_everything_within_ten_seconds(platform: RunningPlatform) -> None:
    assert len(processes_with_marker(platform.marker)) == 1 + 1 + len(ServiceName)  # parley, broker, services
    started = time.monotonic()
    platform.process.send_signal(signal.SIGINT)
    platform.process.wait(timeout=15)
    assert time.monotonic() - started < 10
    assert platform.process.returncode == 0
    assert processes_with_marker(platform.marker) == []


def only_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_port_in_use_stops_startup_with_one_line_naming_it(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_parley(["up", "--data-dir", str(tmp_path), "--http-port", str(port)], marker)
    assert result.returncode == 2
    assert (
        only_line(result.stderr) == f"parley: port 127.0.0.1:{port} for gateway HTTP (--http-port) is in use"
    )
    assert processes_with_marker(marker) == []


def test_an_unusable_data_folder_stops_startup_with_one_line(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = run_parley(
        ["up", "--data-dir", str(not_a_folder / "data"), "--http-port", str(free_port())], marker
    )
    assert result.returncode == 2
    assert only_line(result.stderr).startswith(f"parley: data folder {not_a_folder / 'data'} is not usable")
    assert processes_with_marker(marker) == []


def test_a_broker_that_does_not_answer_stops_startup_with_one_line(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    silent = f"127.0.0.1:{free_port()}"
    result = run_parley(
        ["up", "--data-dir", str(tmp_path), "--http-port", str(free_port()), "--kafka-bootstrap", silent],
        marker,
    )
    assert result.returncode == 2
    assert only_line(result.stderr).startswith(f"parley: Kafka broker at {silent} does not answer")
    assert processes_with_marker(marker) == []


def failed_start_up(tmp_path: Path, **env: str) -> str:
    """The one line `parley up` fails with in this environment; no process of it is left."""
    marker = uuid.uuid4().hex
    ports = ["--http-port", str(free_port()), "--grpc-port-base", str(free_port_block(7))]
    result = run_parley(["up", "--data-dir", str(tmp_path), *ports], marker, **env)
    assert result.returncode == 2
    assert processes_with_marker(marker) == []
    return only_line(result.stderr)


def test_a_service_failing_during_startup_takes_the_half_started_platform_down(tmp_path: Path) -> None:
    # The recorder cannot make its recordings folder: it stops while the others are starting.
    line = failed_start_up(tmp_path, PARLEY_RECORDER__STORAGE_DIR="/dev/null/recordings")
    assert "stopped during start-up" in line and "recordings folder" in line


def test_a_database_that_cannot_be_opened_stops_startup_before_any_service_with_one_line(
    tmp_path: Path,
) -> None:
    """`parley up` migrates first (`parley migrate`): a database it cannot open stops it there."""
    line = failed_start_up(tmp_path, PARLEY_DATABASE_URL="sqlite+aiosqlite:////dev/null/parley.db")
    assert "migrations failed" in line and "cannot open the database" in line


async def test_topics_creates_the_catalogue_on_a_cluster_once(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    await broker.start()
    try:
        command = [*PARLEY, "topics", "--kafka-bootstrap", broker.bootstrap_servers]
        first = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        second = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    finally:
        broker.stop()
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.count("created") == len(Topic)
    assert second.stdout.count("exists") == len(Topic)
