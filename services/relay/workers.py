"""A relay node's worker processes (`PARLEY_RELAY__WORKERS`), as mediasoup runs one worker per core: one
event loop forwards on one core, so a node uses its other cores by running more relays beside it.

The process started as the relay is worker 0 and starts workers 1..N-1 as `python -m services.relay`
with one worker each. Every worker is a whole relay of its own to the room manager: it registers with its
own id (worker 0 the relay's id, worker i `<relay id>-<i>`), its own gRPC address (same host, a port free
at start) and reports its own load, so placement spreads rooms over the workers as over separate relays,
and a room stays on one worker. With `udp_port` P, worker i has UDP port P + i: the kernel's SO_REUSEPORT
steering cannot keep a peer on the worker that holds its room (docs/decisions.md). Its /metrics listener
is on the ops port + i.

Workers read their settings as any service does, from the `PARLEY_*` environment they inherit from
worker 0, with their own id and ports laid over it; a relay built in a test's process from a `Settings`
object passes on only what its environment holds, so tests start a multi-worker relay as a process.

Worker 0 serves only once every worker serves, counts them in its readiness, starts again a worker that
exits while the relay is up (as a new relay: `plan_worker`), and on SIGTERM passes the signal on so all
workers drain together.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Literal

import grpc
import structlog

from services.core.config import ServiceName, Settings
from services.core.embedded_broker import free_port
from services.core.errors import StartupError
from services.core.processes import inherit_env, python_module, spawn, stop
from services.core.rpc import check_health

log = structlog.get_logger(__name__)

# How often worker 0 looks for a worker that exited, and so how soon it starts it again.
WATCH_INTERVAL_S = 1.0
STARTUP_TIMEOUT_S = 60.0


def worker_count(workers: int | Literal["auto"]) -> int:
    """The number of workers to run; "auto" counts the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if workers == "auto" else workers


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    relay_id: str
    grpc_address: str
    # Laid over this process's environment for the worker's.
    env: dict[str, str]


def plan_workers(settings: Settings, relay_id: str, count: int) -> list[WorkerPlan]:
    """Workers 1..count-1 of the relay `relay_id` (worker 0 is this process)."""
    relay = settings.relay
    if relay.udp_port and relay.udp_port + count - 1 > 65535:
        raise StartupError(f"relay UDP ports {relay.udp_port}+{count - 1} workers run past 65535")
    return [plan_worker(settings, relay_id, index) for index in range(1, count)]


def plan_worker(settings: Settings, relay_id: str, index: int, restarts: int = 0) -> WorkerPlan:
    """Worker `index`, started for the first time or again after `restarts` exits. A worker started again
    is a new relay to the room manager (new id, new gRPC port): the old one's lease then lapses and the
    rooms it held are placed again, their lost streams ended (docs/protocol.md, "A relay that dies"),
    instead of staying on an address that has forgotten them."""
    relay = settings.relay
    listen_host = _host(settings.grpc.listen or settings.grpc.address_of(ServiceName.RELAY))
    advertised_host = _host(relay.advertised_grpc_address or settings.grpc.address_of(ServiceName.RELAY))
    worker_id = f"{relay_id}-{index}" if not restarts else f"{relay_id}-{index}r{restarts}"
    port = free_port(listen_host)
    env = {
        "PARLEY_RELAY__WORKERS": "1",
        "PARLEY_RELAY__RELAY_ID": worker_id,
        "PARLEY_GRPC__LISTEN": f"{listen_host}:{port}",
        "PARLEY_RELAY__ADVERTISED_GRPC_ADDRESS": f"{advertised_host}:{port}",
        # The relay has no database; worker 0's start-up already checked the rest.
        "PARLEY_MIGRATE_ON_START": "false",
    }
    # Port 0 (the kernel picks) and none (a port per peer connection) hold for every worker as they are.
    if relay.udp_port:
        env["PARLEY_RELAY__UDP_PORT"] = str(relay.udp_port + index)
    if settings.ops.port:
        env["PARLEY_OPS__PORT"] = str(settings.ops.port + index)
    return WorkerPlan(index, worker_id, f"{advertised_host}:{port}", env)


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


class RelayWorkers:
    """Workers 1..N-1 of this relay node, as child processes of worker 0."""

    def __init__(self, settings: Settings, relay_id: str, plans: list[WorkerPlan]) -> None:
        self._settings = settings
        self._relay_id = relay_id
        self.plans = plans
        self._restarts = dict.fromkeys((plan.index for plan in plans), 0)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Started from the event loop's thread, never a thread pool's: Linux's parent-death signal
        # (services/core/processes.py) fires when the thread that forked the child ends.
        for plan in self.plans:
            self._spawn(plan)

    async def until_serving(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Return once every worker's health says SERVING; StartupError if one exits or the time passes."""
        deadline = time.monotonic() + timeout_s
        for plan in self.plans:
            async with grpc.aio.insecure_channel(plan.grpc_address) as channel:
                while await check_health(channel, timeout_s=1.0) != "SERVING":
                    code = self._processes[plan.index].poll()
                    if code is not None:
                        raise StartupError(f"relay worker {plan.index} stopped during start-up (exit {code})")
                    if time.monotonic() > deadline:
                        raise StartupError(f"relay worker {plan.index} not serving after {timeout_s:.0f}s")
                    await asyncio.sleep(0.1)
        if self.plans:
            self._watch = asyncio.create_task(self._restart_exited(), name="relay-workers-watch")

    async def all_running(self) -> bool:
        """Readiness: a worker that exited is being started again, and the node is short of it meanwhile."""
        return all(process.poll() is None for process in self._processes.values())

    def terminate(self) -> None:
        """SIGTERM every worker: each drains (no new rooms, streams kept) as worker 0 does."""
        self._stopping = True
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()

    async def stop(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the workers to finish draining, then SIGKILL what is left."""
        self.terminate()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.gather(
            *(asyncio.to_thread(stop, process, timeout_s=timeout_s) for process in self._processes.values())
        )

    def _spawn(self, plan: WorkerPlan) -> None:
        env = inherit_env(**plan.env)
        self._processes[plan.index] = spawn(python_module("services.relay"), env=env, inherit_output=True)
        log.info("relay_worker_started", index=plan.index, relay_id=plan.relay_id, grpc=plan.grpc_address)

    async def _restart_exited(self) -> None:
        while not self._stopping:
            for position, plan in enumerate(self.plans):
                code = self._processes[plan.index].poll()
                if code is not None and not self._stopping:
                    log.warning(
                        "relay_worker_exited", index=plan.index, relay_id=plan.relay_id, exit_code=code
                    )
                    self._restarts[plan.index] += 1
                    self.plans[position] = plan_worker(
                        self._settings, self._relay_id, plan.index, self._restarts[plan.index]
                    )
                    self._spawn(self.plans[position])
            await asyncio.sleep(WATCH_INTERVAL_S)
