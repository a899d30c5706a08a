"""Server CPU per join (issue #16): N clients connect and join rooms, on Parley and on Janus's VideoRoom, in
one run, the servers' CPU time read from /proc (utime + stime of every thread) around the joins.

    .venv/bin/python bench/join_cpu.py [--layouts 1x200 100x2] [--concurrency 20] [--repeat 1]
                                       [--servers parley janus janus-notify] [--output FILE]
                                       [--profile DIR]
    .venv/bin/python bench/join_cpu.py --table [JSON ...]   # medians of the repeats, per layout and server

A layout RxN is R rooms of N clients. Each server starts afresh for each layout and repeat, the servers
take turns, and rooms are made before the window, by the operator API (Parley) or the VideoRoom `create`
request (Janus). The window holds, for every client, `concurrency` at a time:
- **parley**: the seven services as processes with their default settings (`platform_process`), the
  in-process room store, rooms of up to N (`max_participants`); a client's WebSocket `connect` with a
  signature made before the window (the gateway asks the licence service to verify it), then `join_room`.
  Its CPU is every service process's, summed; the Tansu broker's is listed apart and not in the sum.
- **janus**: Debian's Janus 1.1.2 as the relay bench starts it (`relay/janus.py`, HTTP transport); a
  client's HTTP session (`create`), `attach` to the VideoRoom plugin and `join` as a publisher that
  publishes nothing, with its long poll for events running. **janus-notify**: the same with the rooms'
  `notify_joining` on, so Janus tells everyone in the room of each joiner, as Parley's seed push
  `on_new_joiner_in` does.
The window ends once every join is answered and every client has heard of every later joiner in its room
(Parley's `on_new_joiner_in`, Janus's `joining` with notify_joining), plus a settle of `SETTLE_S` for work
that follows the joins (Parley's facts on Kafka and their consumers). Idle CPU is measured just before the
window, over `IDLE_S`, and reported beside the figures: `cpu_ms_per_join` counts everything in the window,
`above_idle_ms_per_join` takes each process's idle rate times the window away.

Writes bench/results/join_cpu.json (machine, date and load average in it). `--profile DIR` records each
Parley process with `py-spy record --format raw` during its windows (py-spy installed in the venv for that
run only; a profiled run's figures are not results); `relay/stacks.py FILE` sums a file by function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine  # noqa: E402
from platform_process import parley_processes  # noqa: E402
from process_cpu import stat_cpu_seconds  # noqa: E402
from relay import janus  # noqa: E402

IDLE_S = 5.0
SETTLE_S = 3.0
PUSHES_TIMEOUT_S = 180.0
# Rooms wait for their joiners longer than the window lasts on a loaded machine (default: 60 s).
ROOM_SETTINGS = {"empty_room_grace_s": 600.0}


@dataclass(frozen=True)
class Layout:
    rooms: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.rooms}x{self.size}"

    @property
    def clients(self) -> int:
        return self.rooms * self.size

    @property
    def notifications(self) -> int:
        """Each joiner is announced to everyone already in its room."""
        return self.rooms * self.size * (self.size - 1) // 2

    @classmethod
    def parse(cls, text: str) -> Layout:
        rooms, size = text.split("x")
        return cls(int(rooms), int(size))


@dataclass
class Heard:
    """Join announcements heard by every client together, and when the expected number arrived."""

    expected: int
    count: int = 0
    all_heard: asyncio.Event = field(default_factory=asyncio.Event)

    def one(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_heard.set()


@dataclass(frozen=True)
class Server:
    """A running server under test: its processes by name (summed), those listed apart, and its clients."""

    pids: dict[str, int]
    apart: dict[str, int]
    # Makes the rooms of a layout; gives one client's join (run in the window) per client index.
    prepare: Callable[[Layout, Heard], Awaitable[list[Callable[[], Awaitable[None]]]]]
    # Ends the clients after the window.
    finish: Callable[[], Awaitable[None]]


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: stat_cpu_seconds(pid) for name, pid in pids.items()}


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


# Parley.


class ParleyClient:
    """One WebSocket session: requests answered by req_id; `on_new_joiner_in` pushes counted."""

    _request_ids = count()

    def __init__(self, socket: ClientConnection, heard: Heard) -> None:
        self._socket = socket
        self._heard = heard
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def request(self, cmd: str, **params: Any) -> dict[str, Any]:
        req_id = str(next(self._request_ids))
        answer = self._answers[req_id] = asyncio.get_running_loop().create_future()
        await self._socket.send(json.dumps({"cmd": cmd, "req_id": req_id, "params": params}))
        message = await asyncio.wait_for(answer, 60)
        if message["code"] != 0:
            raise RuntimeError(f"{cmd}: {message}")
        return dict(message["data"])

    async def _read(self) -> None:
        async for text in self._socket:
            message = json.loads(text)
            if "req_id" in message:
                self._answers.pop(message["req_id"]).set_result(message)
            elif message.get("event") == "on_new_joiner_in":
                self._heard.one()

    async def close(self) -> None:
        try:
            await self.request("disconnect")
        except (RuntimeError, websockets.ConnectionClosed, TimeoutError):
            pass
        await self._socket.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@asynccontextmanager
async def parley(layout: Layout) -> AsyncIterator[Server]:
    rules = {**ROOM_SETTINGS, "max_participants": max(layout.size, 2)}
    with tempfile.TemporaryDirectory() as data_dir:
        async with (
            parley_processes(Path(data_dir), rooms=rules) as platform,
            httpx.AsyncClient(base_url=platform.http_url, timeout=30) as http,
        ):
            ws_url = platform.http_url.replace("http", "ws") + "/ws/v1"
            clients: list[ParleyClient] = []

            async def prepare(layout: Layout, heard: Heard) -> list[Callable[[], Awaitable[None]]]:
                app = (await http.post("/v1/apps", json={"name": f"join-cpu-{layout.name}"})).json()
                rooms = [
                    (
                        await http.post(
                            "/v1/rooms", json={"biz_name": app["bizName"], "uid": f"host_{index}"}
                        )
                    ).json()
                    for index in range(layout.rooms)
                ]
                joins = []
                for index in range(layout.clients):
                    uid = f"user_{index}"
                    signature = (
                        await http.post(
                            f"/v1/apps/{app['bizName']}/signatures", json={"uid": uid, "ttl": "24h"}
                        )
                    ).json()["signature"]
                    room = rooms[index % layout.rooms]
                    connect = {
                        "uid": uid,
                        "biz_name": app["bizName"],
                        "sub_biz": app["appId"],
                        "workspace_id": app["workspaceId"],
                        "sign": signature,
                    }

                    async def join(connect: dict[str, str] = connect, room: dict[str, Any] = room) -> None:
                        client = ParleyClient(await websockets.connect(ws_url, max_queue=None), heard)
                        clients.append(client)
                        await client.request("connect", **connect)
                        await client.request("join_room", room_id=room["roomId"], rtoken=room["rtoken"])

                    joins.append(join)
                return joins

            async def finish() -> None:
                await asyncio.gather(*(client.close() for client in clients))

            yield Server(platform.pids, {"broker": platform.broker_pid}, prepare, finish)


# Janus.


@asynccontextmanager
async def janus_videoroom(layout: Layout, notify_joining: bool) -> AsyncIterator[Server]:
    with tempfile.TemporaryDirectory() as folder:
        process, port = await asyncio.to_thread(
            janus.start_on_free_port, Path(folder), set(range(os.cpu_count() or 1))
        )
        base_url = f"http://127.0.0.1:{port}"
        admin = janus.JanusSession(base_url)
        sessions: list[janus.JanusSession] = []
        try:
            await admin.open()
            admin_handle = await admin.attach()

            async def prepare(layout: Layout, heard: Heard) -> list[Callable[[], Awaitable[None]]]:
                def on_event(event: dict[str, Any]) -> None:
                    if "joining" in event.get("plugindata", {}).get("data", {}):
                        heard.one()

                for room in range(1, layout.rooms + 1):
                    await admin.message(
                        admin_handle,
                        {
                            "request": "create",
                            "room": room,
                            "publishers": layout.size + 1,
                            "notify_joining": notify_joining,
                        },
                    )
                joins = []
                for index in range(layout.clients):

                    async def join(index: int = index) -> None:
                        session = janus.JanusSession(base_url, on_event)
                        sessions.append(session)
                        await session.open()
                        handle = await session.attach()
                        body = {
                            "request": "join",
                            "ptype": "publisher",
                            "room": index % layout.rooms + 1,
                            "display": f"user_{index}",
                        }
                        await session.message(handle, body)

                    joins.append(join)
                return joins

            async def finish() -> None:
                await asyncio.gather(*(session.close() for session in sessions))

            yield Server({"janus": process.pid}, {}, prepare, finish)
        finally:
            await admin.close()
            process.terminate()
            await asyncio.to_thread(process.wait, 20)


# The run.


def profiling(pids: dict[str, int], folder: Path | None, label: str) -> list[subprocess.Popen[bytes]]:
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "100",
                "--nonblocking", "--format", "raw", "--output", str(folder / f"{label}-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]  # fmt: skip


def stop_profiling(recorders: list[subprocess.Popen[bytes]]) -> None:
    for recorder in recorders:
        # py-spy writes its file when interrupted.
        recorder.send_signal(signal.SIGINT)
    for recorder in recorders:
        recorder.wait(30)


async def measure(
    server: Server, layout: Layout, concurrency: int, notifications: int, profile: Path | None, label: str
) -> dict[str, Any]:
    heard = Heard(expected=notifications)
    if notifications == 0:
        heard.all_heard.set()
    joins = await server.prepare(layout, heard)
    everyone = {**server.pids, **server.apart}
    idle_before = cpu_of(everyone)
    await asyncio.sleep(IDLE_S)
    idle = cpu_between(idle_before, cpu_of(everyone))
    me = os.getpid()
    in_flight = asyncio.Semaphore(concurrency)

    async def limited(join: Callable[[], Awaitable[None]]) -> None:
        async with in_flight:
            await join()

    recorders = profiling(server.pids, profile, label)
    before, client_before, started = cpu_of(everyone), stat_cpu_seconds(me), time.monotonic()
    await asyncio.gather(*(limited(join) for join in joins))
    joined_s = time.monotonic() - started
    await asyncio.wait_for(heard.all_heard.wait(), PUSHES_TIMEOUT_S)
    heard_s = time.monotonic() - started
    await asyncio.sleep(SETTLE_S)
    window_s = time.monotonic() - started
    used = cpu_between(before, cpu_of(everyone))
    client_cpu_s = stat_cpu_seconds(me) - client_before
    stop_profiling(recorders)
    await server.finish()

    def per_join_ms(seconds: float) -> float:
        return round(seconds * 1000 / layout.clients, 3)

    summed = sum(used[name] for name in server.pids)
    idle_rate = {name: idle[name] / IDLE_S for name in everyone}
    above_idle = sum(used[name] - idle_rate[name] * window_s for name in server.pids)
    return {
        "joins": layout.clients,
        "notifications_heard": heard.count,
        "all_joined_s": round(joined_s, 2),
        "all_heard_s": round(heard_s, 2),
        "window_s": round(window_s, 2),
        "cpu_ms_per_join": per_join_ms(summed),
        "above_idle_ms_per_join": per_join_ms(above_idle),
        "by_process_ms_per_join": {name: per_join_ms(used[name]) for name in server.pids},
        "apart_ms_per_join": {name: per_join_ms(used[name]) for name in server.apart},
        "idle_cores": {name: round(rate, 4) for name, rate in idle_rate.items()},
        "client_cpu_s": round(client_cpu_s, 2),
    }


def servers(names: list[str], layout: Layout) -> dict[str, Callable[[], Any]]:
    made: dict[str, Callable[[], Any]] = {
        "parley": lambda: parley(layout),
        "janus": lambda: janus_videoroom(layout, notify_joining=False),
        "janus-notify": lambda: janus_videoroom(layout, notify_joining=True),
    }
    return {name: made[name] for name in names}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "server CPU per join (connect + join), Parley vs Janus VideoRoom",
        "machine": machine(),
        "concurrency": args.concurrency,
        "idle_s": IDLE_S,
        "settle_s": SETTLE_S,
        "note": args.note,
        "runs": [],
    }
    for repeat in range(args.repeat):
        for layout in (Layout.parse(text) for text in args.layouts):
            # Who goes first alternates between repeats.
            order = args.servers if repeat % 2 == 0 else list(reversed(args.servers))
            for name, start in servers(order, layout).items():
                announced = name != "janus"
                async with start() as server:
                    notifications = layout.notifications if announced else 0
                    label = f"{name}-{layout.name}-{repeat}"
                    figures = await measure(
                        server, layout, args.concurrency, notifications, args.profile, label
                    )
                figures.update(server=name, layout=layout.name, repeat=repeat, load_average=os.getloadavg())
                print(json.dumps(figures), flush=True)
                result["runs"].append(figures)
    result["machine_at_end"] = {"load_average": os.getloadavg()}
    return result


def table(paths: list[Path]) -> None:
    """Medians over the repeats of each file's runs: CPU per join, above idle, and per process."""
    print("| file | layout | server | repeats | CPU ms per join | above idle | by process (ms per join) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in paths:
        runs = json.loads(path.read_text())["runs"]
        for layout in dict.fromkeys(run["layout"] for run in runs):
            for server in dict.fromkeys(run["server"] for run in runs):
                chosen = [run for run in runs if (run["layout"], run["server"]) == (layout, server)]
                if not chosen:
                    continue
                processes = {
                    name: statistics.median(run["by_process_ms_per_join"][name] for run in chosen)
                    for name in chosen[0]["by_process_ms_per_join"]
                }
                processes.update(
                    {
                        f"({name})": statistics.median(run["apart_ms_per_join"][name] for run in chosen)
                        for name in chosen[0]["apart_ms_per_join"]
                    }
                )
                split = ", ".join(f"{name} {ms:.2f}" for name, ms in processes.items() if len(processes) > 1)
                print(
                    f"| {path.name} | {layout} | {server} | {len(chosen)} "
                    f"| {statistics.median(run['cpu_ms_per_join'] for run in chosen):.2f} "
                    f"| {statistics.median(run['above_idle_ms_per_join'] for run in chosen):.2f} | {split} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layouts", nargs="+", default=["1x200", "100x2"])
    parser.add_argument("--servers", nargs="+", default=["parley", "janus", "janus-notify"])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--note", default="")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "join_cpu.json")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--table", type=Path, nargs="*")
    args = parser.parse_args()
    if args.table is not None:
        table(args.table or [args.output])
        return
    result = asyncio.run(run(args))
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
