"""What the benchmarks share: a real `parley up` (the broker and seven services as processes, on free
ports, in a temporary data folder), the same seven services as processes started one by one (so that a
bench can add a standby room manager and name every process), and latency percentiles."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

# The services are forked from this process while its gRPC channels are busy: gRPC's fork handlers then
# break the child between fork and exec now and then ("epoll_wait error: Bad file descriptor").
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from process_cpu import children_of, command_line  # noqa: E402

from services.core.config import ServiceName  # noqa: E402
from services.core.embedded_broker import free_port, free_port_block  # noqa: E402
from tests.testing import Instance, start_platform  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def running_platform(env: dict[str, str] | None = None) -> Iterator[str]:
    """The gateway URL of a platform that runs until the block ends; `env` is added to its environment
    (PARLEY_* settings of every service)."""
    http_port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        command = [
            sys.executable, "-m", "services.cli.main", "up",
            "--data-dir", data_dir,
            "--http-port", str(http_port),
            "--grpc-port-base", str(free_port_block(7)),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("Health:"):
                    break
            else:
                raise SystemExit("parley up did not come up")
            yield f"http://127.0.0.1:{http_port}"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(value * 1000 for value in seconds)
    return {
        "min": round(ms[0], 1),
        "p50": round(statistics.median(ms), 1),
        "p90": round(ms[max(0, int(len(ms) * 0.9) - 1)], 1),
        "p99": round(ms[max(0, int(len(ms) * 0.99) - 1)], 1),
        "max": round(ms[-1], 1),
    }


@dataclass(frozen=True)
class ParleyProcesses:
    http_url: str
    # Every Parley service process by its key (gateway, rooms, rooms-2, licence, ...).
    pids: dict[str, int]
    # The Tansu broker: not Parley's code, listed apart.
    broker_pid: int
    # The leading room manager's operations listener (/metrics).
    rooms_ops_url: str = ""


@asynccontextmanager
async def parley_processes(
    data_dir: Path,
    *,
    store: str = "memory",
    standby_room_manager: bool = False,
    rooms: Mapping[str, Any] | None = None,
) -> AsyncIterator[ParleyProcesses]:
    """The seven services as `python -m services.<name>` processes with their default settings on a Tansu
    broker of their own (tests/testing.py), as `parley up` runs them; `store` is the room store (Redis at
    127.0.0.1:6379 under a prefix of this run's, deleted after); `standby_room_manager` adds a second room
    manager on the same store, started once the first leads, and gives the gateway both addresses
    (`ipv4:a,b`), as docs/decisions.md describes replicas; `rooms` adds room manager settings."""
    prefix = f"bench:{uuid.uuid4().hex}:"
    settings: dict[str, Any] = {"rooms": {"store": store, **(rooms or {})}}
    if store == "redis":
        settings["rooms"].update(redis_url=REDIS_URL, redis_prefix=prefix)
    others = [name for name in ServiceName if name is not ServiceName.GATEWAY]
    rooms_ops_port = free_port()
    ops = {ServiceName.ROOMS: {"ops": {"port": rooms_ops_port}}}
    try:
        async with start_platform(
            data_dir,
            *(Instance(name, process=True, settings=ops.get(name, {})) for name in others),
            settings=settings,
        ) as platform:
            gateway_settings: dict[str, Any] = {}
            if standby_room_manager:
                await platform.start(Instance(ServiceName.ROOMS, process=True, standby=True))
                either = f"ipv4:{platform['rooms'].grpc_address},{platform['rooms-2'].grpc_address}"
                gateway_settings = {"grpc": {"rooms": either}}
            (gateway,) = await platform.start(
                Instance(ServiceName.GATEWAY, process=True, settings=gateway_settings)
            )
            keys = [name.value for name in ServiceName] + (["rooms-2"] if standby_room_manager else [])
            pids = {}
            for key in keys:
                process = platform[key].process
                assert process is not None
                pids[key] = process.pid
            (broker_pid,) = (pid for pid in children_of(os.getpid()) if "tansu" in command_line(pid))
            yield ParleyProcesses(gateway.http_url, pids, broker_pid, f"http://127.0.0.1:{rooms_ops_port}")
    finally:
        if store == "redis":
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.close()
