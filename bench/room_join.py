"""Join latency and throughput (issue #4): N users connect over WebSocket and join rooms at once, on a real
`parley up`. Each room is created by a host first; the joiners are spread over rooms of at most 8.

    .venv/bin/python bench/room_join.py [--clients 10 50 100] [--stores memory redis redis-standby]
        [--rounds N] [--out NAME.json]

A join's latency is from sending `join_room` to its response; throughput is joins answered per second
of the burst. Writes bench/results/room_join.json; with `--stores`, the same bursts in one run on a
platform per room store, to bench/results/room_join_stores.json (issue #16): the seven services as
processes (`platform_process.parley_processes`) with the in-process store, with the Redis store
(127.0.0.1:6379, under a prefix of the run's own, deleted after), and with the Redis store and a second
room manager standing by, the gateway given both room managers' addresses. `--rounds` goes through the
stores that many times, interleaved (memory, redis, ..., memory, redis, ...), a fresh platform each time,
so that a machine whose load drifts weighs on every store alike. Each platform's record has the load
average when it started and the CPU seconds its room managers spent during the bursts (the standby's:
what standing by costs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine
from platform_process import parley_processes, percentiles_ms, running_platform
from process_cpu import stat_cpu_seconds

ROOM_SIZE = 8
SETUP_CONCURRENCY = 10
_request_ids = count()


async def request(socket: ClientConnection, cmd: str, **params: Any) -> dict[str, Any]:
    """Send a command and return its response, skipping the pushes that arrive before it."""
    req_id = str(next(_request_ids))
    await socket.send(json.dumps({"cmd": cmd, "req_id": req_id, "params": params}))
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        if message.get("req_id") == req_id:
            if message["code"] != 0:
                raise RuntimeError(f"{cmd}: {message}")
            return dict(message["data"])


async def connected_user(
    ws_url: str, http: httpx.AsyncClient, app: dict[str, str], uid: str
) -> ClientConnection:
    signature = (
        await http.post(f"/v1/apps/{app['bizName']}/signatures", json={"uid": uid, "ttl": "24h"})
    ).json()["signature"]
    socket = await websockets.connect(ws_url)
    await request(
        socket,
        "connect",
        uid=uid,
        biz_name=app["bizName"],
        sub_biz=app["appId"],
        workspace_id=app["workspaceId"],
        sign=signature,
    )
    return socket


async def join_room_served(http: httpx.AsyncClient, rooms_url: str) -> tuple[float, float]:
    """How many JoinRoom requests the room manager answered, and the seconds it spent on them in all
    (its gRPC server's histogram: from the request's arrival to its answer, the store's commit included)."""
    text = (await http.get(f"{rooms_url}/metrics")).text
    found = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for kind in found:
            if line.startswith(f"parley_grpc_server_duration_seconds_{kind}{{") and "JoinRoom" in line:
                found[kind] = float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


async def burst(url: str, clients: int, run: int, rooms_url: str | None = None) -> dict[str, Any]:
    ws_url = url.replace("http", "ws") + "/ws/v1"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        app = (await http.post("/v1/apps", json={"name": f"join-bench-{run}"})).json()
        rooms = []
        hosts = []
        for index in range((clients + ROOM_SIZE - 2) // (ROOM_SIZE - 1)):
            host = await connected_user(ws_url, http, app, f"host_{run}_{index}")
            hosts.append(host)
            rooms.append(await request(host, "create_room"))
        # Connecting is set-up, not measured: a few at a time, so that a loaded machine does not time it out.
        connecting = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def joiner(index: int) -> ClientConnection:
            async with connecting:
                return await connected_user(ws_url, http, app, f"user_{run}_{index}")

        joiners = await asyncio.gather(*(joiner(index) for index in range(clients)))

    async def join(socket: ClientConnection, room: dict[str, Any]) -> float:
        started = time.perf_counter()
        await request(socket, "join_room", room_id=room["room_id"], rtoken=room["rtoken"])
        return time.perf_counter() - started

    async with httpx.AsyncClient(timeout=30) as metrics:
        served_before = await join_room_served(metrics, rooms_url) if rooms_url else (0.0, 0.0)
        started = time.perf_counter()
        latencies = await asyncio.gather(
            *(join(socket, rooms[index // (ROOM_SIZE - 1)]) for index, socket in enumerate(joiners))
        )
        elapsed = time.perf_counter() - started
        served_after = await join_room_served(metrics, rooms_url) if rooms_url else (0.0, 0.0)
    for socket in [*joiners, *hosts]:
        await socket.close()
    result: dict[str, Any] = {
        "clients": clients,
        "rooms": len(rooms),
        "join_latency_ms": percentiles_ms(list(latencies)),
        "joins_per_s": round(clients / elapsed, 1),
    }
    answered = served_after[0] - served_before[0]
    if answered:
        # The room manager's share of a join's latency, whatever the gateway and the network add.
        result["room_manager_join_ms_mean"] = round((served_after[1] - served_before[1]) / answered * 1000, 2)
    return result


async def measure(url: str, sizes: list[int], rooms_url: str | None = None) -> list[dict[str, Any]]:
    return [await burst(url, clients, run, rooms_url) for run, clients in enumerate(sizes)]


# Each `--stores` choice: the room store, and whether a second room manager stands by.
STORES = {"memory": ("memory", False), "redis": ("redis", False), "redis-standby": ("redis", True)}


async def on_store(choice: str, sizes: list[int]) -> dict[str, Any]:
    store, standby = STORES[choice]
    load_average = os.getloadavg()
    with tempfile.TemporaryDirectory() as data_dir:
        async with parley_processes(Path(data_dir), store=store, standby_room_manager=standby) as parley:
            room_managers = {key: pid for key, pid in parley.pids.items() if key.startswith("rooms")}
            cpu_before = {key: stat_cpu_seconds(pid) for key, pid in room_managers.items()}
            started = time.perf_counter()
            bursts = await measure(parley.http_url, sizes, parley.rooms_ops_url)
            cpu = {
                key: round(stat_cpu_seconds(pid) - cpu_before[key], 2) for key, pid in room_managers.items()
            }
            return {
                "load_average": [round(value, 2) for value in load_average],
                "bursts_s": round(time.perf_counter() - started, 1),
                "room_manager_cpu_s": cpu,
                "bursts": bursts,
            }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--stores", nargs="+", choices=list(STORES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", help="file name under bench/results/")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "join_room latency and throughput, N users joining at once",
        "machine": machine(),
        "room_size": ROOM_SIZE,
    }
    if args.stores:
        result["note"] = (
            "the seven services as processes per store; redis-standby: a second room manager on the same "
            "Redis store standing by, the gateway given both addresses; wall-clock latency on a 2-core "
            "machine shared with other work, so compare stores within this run only"
        )
        by_store: dict[str, list[dict[str, Any]]] = {store: [] for store in args.stores}
        for _ in range(args.rounds):
            for store in args.stores:
                try:
                    by_store[store].append(asyncio.run(on_store(store, args.clients)))
                except RuntimeError as error:
                    # A platform that did not come up, or a set-up that timed out on an overloaded machine:
                    # the other stores' rounds still count.
                    by_store[store].append({"failed": str(error), "load_average": os.getloadavg()})
        result["by_store"] = by_store
        result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
        name = "room_join_stores.json"
    else:
        with running_platform() as url:
            result["bursts"] = asyncio.run(measure(url, args.clients))
        name = "room_join.json"
    out = Path(__file__).resolve().parent / "results" / (args.out or name)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
