"""How a relay node's workers are laid out: worker 0 is the process started, workers 1..N-1 each get an id,
a gRPC port, a UDP port and a metrics port of their own, and "auto" counts the cores the process may use."""

from __future__ import annotations

import os

import pytest

from services.core.config import Settings
from services.core.errors import StartupError
from services.relay.workers import plan_worker, plan_workers, worker_count


def node_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_workers_come_from_the_environment_as_a_number_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().relay.workers == 1
    assert node_settings(monkeypatch, PARLEY_RELAY__WORKERS="3").relay.workers == 3
    auto = node_settings(monkeypatch, PARLEY_RELAY__WORKERS="auto").relay.workers
    assert worker_count(auto) == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError):
        node_settings(monkeypatch, PARLEY_RELAY__WORKERS="0")


def test_one_worker_starts_no_other_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan_workers(node_settings(monkeypatch), "node", 1) == []


def test_each_further_worker_has_its_own_id_and_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = node_settings(
        monkeypatch,
        PARLEY_GRPC__LISTEN="127.0.0.1:50053",
        PARLEY_RELAY__ADVERTISED_GRPC_ADDRESS="127.0.0.2:50053",
        PARLEY_RELAY__UDP_PORT="40000",
        PARLEY_OPS__PORT="9093",
    )
    plans = plan_workers(settings, "node", 3)
    assert [plan.index for plan in plans] == [1, 2]
    assert [plan.relay_id for plan in plans] == ["node-1", "node-2"]
    assert [plan.env["PARLEY_RELAY__UDP_PORT"] for plan in plans] == ["40001", "40002"]
    assert [plan.env["PARLEY_OPS__PORT"] for plan in plans] == ["9094", "9095"]
    assert all(plan.env["PARLEY_RELAY__WORKERS"] == "1" for plan in plans)
    # Listening on the listen host, registered under the advertised host, on one port of its own each.
    ports = set()
    for plan in plans:
        host, port = plan.env["PARLEY_GRPC__LISTEN"].rsplit(":", 1)
        assert host == "127.0.0.1"
        assert plan.grpc_address == plan.env["PARLEY_RELAY__ADVERTISED_GRPC_ADDRESS"] == f"127.0.0.2:{port}"
        ports.add(port)
    assert len(ports) == 2 and "50053" not in ports


def test_a_kernel_picked_or_per_connection_udp_port_is_left_to_each_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [per_connection] = plan_workers(node_settings(monkeypatch), "node", 2)
    [picked] = plan_workers(node_settings(monkeypatch, PARLEY_RELAY__UDP_PORT="0"), "node", 2)
    assert "PARLEY_RELAY__UDP_PORT" not in picked.env
    assert "PARLEY_RELAY__UDP_PORT" not in per_connection.env
    assert "PARLEY_OPS__PORT" not in per_connection.env


def test_udp_ports_past_the_last_port_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StartupError, match="65535"):
        plan_workers(node_settings(monkeypatch, PARLEY_RELAY__UDP_PORT="65535"), "node", 2)


def test_a_worker_started_again_is_a_new_relay_on_the_same_udp_port(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = node_settings(monkeypatch, PARLEY_RELAY__UDP_PORT="40000")
    first = plan_worker(settings, "node", 1)
    again = plan_worker(settings, "node", 1, restarts=2)
    assert (first.relay_id, again.relay_id) == ("node-1", "node-1r2")
    assert first.env["PARLEY_RELAY__UDP_PORT"] == again.env["PARLEY_RELAY__UDP_PORT"] == "40001"
