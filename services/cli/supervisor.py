"""`parley up`: the embedded broker and the seven services as processes on one machine.

Start-up runs checks first (data folder writable, ports free), so a bad configuration stops before
anything starts; anything that fails later stops what was already started. Each service logs to
`<data-dir>/logs/<service>.log`; a service that dies during start-up is reported with its last log line.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.core.config import GrpcEndpoints, ServiceName
from services.core.embedded_broker import (
    LOOPBACK,
    EmbeddedBroker,
    port_is_free,
    wait_for_broker,
)
from services.core.errors import StartupError
from services.core.migrations import migrating_services
from services.core.processes import inherit_env, python_module, spawn, stop, tail
from services.core.rpc import check_health
from services.core.topics import ensure_topics

STOP_TIMEOUT_S = 8.0
# One service's migrations, from an empty database.
MIGRATE_TIMEOUT_S = 120.0


@dataclass
class PlatformOptions:
    data_dir: Path
    http_port: int = 8080
    grpc_port_base: int = 50051
    kafka_port: int = 0
    # An existing Kafka cluster instead of the embedded broker.
    kafka_bootstrap: str | None = None
    startup_timeout_s: float = 60.0
    # First of six consecutive ports for the services' /metrics, /livez and /readyz (the gateway serves
    # them on its HTTP port); 0 picks a free block at start (`ops_port_block`).
    ops_port_base: int = 0

    def ops_ports(self) -> dict[ServiceName, int]:
        others = [name for name in ServiceName if name is not ServiceName.GATEWAY]
        return {name: self.ops_port_base + index for index, name in enumerate(others)}

    def grpc_endpoints(self) -> GrpcEndpoints:
        return GrpcEndpoints(
            **{
                name.value: f"{LOOPBACK}:{self.grpc_port_base + index}"
                for index, name in enumerate(ServiceName)
            }
        )


@dataclass
class RunningService:
    name: ServiceName
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # Where /metrics, /livez and /readyz answer.
    ops_url: str
    reported_exit: bool = field(default=False)


# Called while `parley up` waits: each service's health status so far (SERVING, NOT_SERVING, UNREACHABLE).
Progress = Callable[[dict[ServiceName, str]], None]


# Below Linux's ephemeral range (32768-60999): a port picked here is not taken meanwhile by some process's
# outgoing connection, as a free ephemeral port can be before the service binds it.
OPS_PORT_RANGE = (20000, 32000)


def ops_port_block(count: int) -> int:
    low, high = OPS_PORT_RANGE
    for _ in range(200):
        base = random.randrange(low, high - count)
        if all(port_is_free(LOOPBACK, base + offset) for offset in range(count)):
            return base
    raise StartupError(f"no {count} consecutive free ports for the services' metrics; pass --ops-port-base")


def prepare_data_dir(data_dir: Path) -> None:
    try:
        for sub in ("db", "recordings", "logs"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        probe = data_dir / "db" / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StartupError(f"data folder {data_dir.resolve()} is not usable: {error.strerror}") from None


def check_ports(options: PlatformOptions) -> None:
    wanted = [(options.http_port, "gateway HTTP (--http-port)")]
    endpoints = options.grpc_endpoints()
    for name in ServiceName:
        port = int(endpoints.address_of(name).rsplit(":", 1)[1])
        wanted.append((port, f"{name.value} gRPC (--grpc-port-base)"))
    for name, port in options.ops_ports().items():
        wanted.append((port, f"{name.value} metrics (--ops-port-base)"))
    for port, what in wanted:
        if not port_is_free(LOOPBACK, port):
            raise StartupError(f"port {LOOPBACK}:{port} for {what} is in use")


class Platform:
    def __init__(self, options: PlatformOptions, progress: Progress | None = None) -> None:
        self.options = options
        self._progress = progress
        self.data_dir = options.data_dir.resolve()
        self.broker: EmbeddedBroker | None = None
        self.bootstrap_servers = options.kafka_bootstrap or ""
        self.services: list[RunningService] = []

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.options.http_port}"

    async def start(self) -> None:
        """Everything up and SERVING, or StartupError with nothing left running."""
        try:
            await self._start()
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        prepare_data_dir(self.data_dir)
        if not self.options.ops_port_base:
            self.options.ops_port_base = ops_port_block(len(ServiceName) - 1)
        check_ports(self.options)
        if self.options.kafka_bootstrap:
            await wait_for_broker(self.options.kafka_bootstrap, timeout_s=10)
        else:
            self.broker = EmbeddedBroker(
                port=self.options.kafka_port, log_path=self.data_dir / "logs" / "broker.log"
            )
            await self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        await ensure_topics(self.bootstrap_servers, partitions=3)
        endpoints = self.options.grpc_endpoints()
        env = inherit_env(
            PARLEY_ENVIRONMENT="development",
            PARLEY_DATA_DIR=str(self.data_dir),
            PARLEY_KAFKA__BOOTSTRAP_SERVERS=self.bootstrap_servers,
            PARLEY_GATEWAY__HTTP_PORT=str(self.options.http_port),
            **{f"PARLEY_GRPC__{name.name}": endpoints.address_of(name) for name in ServiceName},
        )
        await asyncio.to_thread(migrate, env, self.data_dir / "logs")
        # Migrated once, above: the services do not each migrate again as they start.
        env["PARLEY_MIGRATE_ON_START"] = "false"
        ops_ports = self.options.ops_ports()
        for name in ServiceName:
            log_path = self.data_dir / "logs" / f"{name.value}.log"
            service_env = dict(env)
            if name in ops_ports:
                service_env["PARLEY_OPS__PORT"] = str(ops_ports[name])
                ops_url = f"http://{LOOPBACK}:{ops_ports[name]}"
            else:
                ops_url = self.http_url
            process = spawn(python_module(f"services.{name.value}"), env=service_env, log_path=log_path)
            self.services.append(RunningService(name, endpoints.address_of(name), process, log_path, ops_url))
        await self._wait_until_serving()

    async def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        channels = {service.name: grpc.aio.insecure_channel(service.address) for service in self.services}
        try:
            waiting = list(self.services)
            while waiting:
                for service in waiting:
                    if service.process.poll() is not None:
                        reason = tail(service.log_path) or f"exit code {service.process.returncode}"
                        raise StartupError(f"{service.name.value} stopped during start-up: {reason}")
                statuses = await asyncio.gather(
                    *(check_health(channels[service.name], timeout_s=1.0) for service in waiting)
                )
                if self._progress is not None:
                    progress = {service.name: "SERVING" for service in self.services}
                    progress.update({s.name: status for s, status in zip(waiting, statuses, strict=True)})
                    self._progress(progress)
                waiting = [s for s, status in zip(waiting, statuses, strict=True) if status != "SERVING"]
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(service.name.value for service in waiting)
                    raise StartupError(f"not serving after {self.options.startup_timeout_s:.0f}s: {names}")
                if waiting:
                    await asyncio.sleep(0.2)
        finally:
            for channel in channels.values():
                await channel.close()

    def exited_services(self) -> list[RunningService]:
        """Services that have exited since the last call (each reported once)."""
        exited = [s for s in self.services if not s.reported_exit and s.process.poll() is not None]
        for service in exited:
            service.reported_exit = True
        return exited

    def stop(self) -> None:
        """Stop every service (the gateway first, so clients stop arriving), then the broker."""
        for service in reversed(self.services):
            if service.process.poll() is None:
                service.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for service in self.services:
            stop(service.process, timeout_s=max(0.1, deadline - time.monotonic()))
        self.services.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def migrate(env: dict[str, str], logs: Path) -> None:
    """Bring every service's database to its schema, one service after the other
    (`python -m services.<name> migrate`, services/core/migrations.py)."""
    logs.mkdir(parents=True, exist_ok=True)
    for name in migrating_services():
        log_path = logs / f"{name.value}-migrate.log"
        process = spawn([*python_module(f"services.{name.value}"), "migrate"], env=env, log_path=log_path)
        if process.wait(MIGRATE_TIMEOUT_S) != 0:
            raise StartupError(f"{name.value} migrations failed: {tail(log_path) or process.returncode}")
