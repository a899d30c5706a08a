"""Webhook dispatcher throughput and latency: room facts published on Kafka at a fixed rate across many
rooms, delivered as seed room-status callbacks to a local receiver.

    .venv/bin/python bench/webhooks.py [--rate 1000] [--rooms 100] [--seconds 10] [--database-url URL]
                                       [--replicas N]

`--database-url postgresql`: a fresh schema on the test PostgreSQL (tests/postgres.py); default SQLite.
`--replicas 2`: two dispatcher processes sharing the facts (one consumer group) and the schedule (use
PostgreSQL: replicas share one database).

Runs a Tansu broker, the licence service and the webhook dispatcher as processes (tests/testing.py's
platform), a uvicorn receiver answering `{bizRequestId, code: 0}` in a process of its own
(bench/webhook_receiver.py: the customer's side, not Parley's), and in this process the publisher.
Latency is from the moment the broker acknowledged a fact (here) to the moment the receiver answered it
(there): `time.time()` in both, one clock (CLOCK_REALTIME) on one machine. Throughput is deliveries
acknowledged per second while facts came in, and after (the backlog drained). CPU is the dispatcher
processes' user+system time over the run, and that of their main threads (the event loop) apart from their
other threads (the database driver's); and that of every process of the bench (broker, licence, receiver,
this one) and of the whole machine.
Writes bench/results/webhooks.json. Issue #14's goal: p99 < 100 ms at 1,000 events/s across 100 rooms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The services are forked from this process while its gRPC channels are busy: gRPC's fork handlers then
# break the child between fork and exec now and then ("epoll_wait error: Bad file descriptor").
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: E402
from parley.licence.v1 import licence_pb2  # noqa: E402
from parley.rooms.v1 import events_pb2 as room_events  # noqa: E402
from platform_process import percentiles_ms  # noqa: E402
from process_cpu import (  # noqa: E402
    CLOCK_TICKS,
    children_of,
    command_line,
    main_thread_cpu_seconds,
    stat_cpu_seconds,
)
from sqlalchemy import select  # noqa: E402

from services.core.config import ServiceName  # noqa: E402
from services.core.db import create_engine  # noqa: E402
from services.core.embedded_broker import free_port  # noqa: E402
from services.core.events import EventPublisher, StagedEvent, create_broker  # noqa: E402
from services.core.timestamps import timestamp  # noqa: E402
from services.core.topics import Topic  # noqa: E402
from services.webhooks.store import deliveries  # noqa: E402
from tests.postgres import fresh_database_url  # noqa: E402
from tests.testing import Instance, start_platform  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "webhooks.json"
RECEIVER = Path(__file__).resolve().parent / "webhook_receiver.py"
PUBLISH_TICK_S = 0.01


class Receiver:
    """The receiver process (bench/webhook_receiver.py) and what it answered: bizRequestId → the wall-clock
    time of its answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered: dict[str, float] = {}
        self.requests = 0
        self._answer = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RECEIVER),
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
        )
        self._reading = asyncio.create_task(self._read())
        async with asyncio.timeout(30):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                return

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            biz_request_id, at = line.split()
            self.requests += 1
            self.answered.setdefault(biz_request_id.decode(), float(at))
            self._answer.set()

    async def wait_for(self, event_ids: Iterable[str]) -> None:
        missing = set(event_ids)
        while True:
            missing -= self.answered.keys()
            if not missing:
                return
            self._answer.clear()
            await self._answer.wait()


def processes_cpu() -> dict[int, float]:
    """utime + stime of this process and every process started under it (the broker, the services, the
    receiver), by pid."""
    found: dict[int, float] = {}
    waiting = [os.getpid()]
    while waiting:
        pid = waiting.pop()
        try:
            found[pid] = stat_cpu_seconds(pid)
        except OSError:
            continue
        waiting.extend(children_of(pid))
    return found


def cpu_by_process(
    before: dict[int, float], after: dict[int, float], named: dict[int, str]
) -> dict[str, float]:
    """CPU seconds between two `processes_cpu`, named: the bench itself (the publisher), the dispatchers
    by key, the others by their command line."""
    spent: dict[str, float] = {}
    for pid, cpu in after.items():
        if pid == os.getpid():
            name = "bench (publisher)"
        elif pid in named:
            name = named[pid]
        else:
            name = process_name(pid)
        spent[name] = round(spent.get(name, 0.0) + cpu - before.get(pid, 0.0), 2)
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def process_name(pid: int) -> str:
    words = command_line(pid).split()
    for word in words:
        for known in ("tansu", "webhook_receiver", "licence", "webhooks"):
            if known in word:
                return known.replace("webhook_receiver", "receiver")
    return Path(words[0]).name if words else str(pid)


def machine_cpu_seconds() -> float:
    """Busy time of every core since boot (/proc/stat's first line, all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


async def schedule_stages(database_url: str, sent: dict[str, float]) -> dict[str, Any]:
    """Where the time went, from the dispatcher's schedule: the fact's time (ce_time) to its delivery
    written (Kafka and the intake), and written to answered (claiming, the attempt, saving it)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(deliveries.c.event_time, deliveries.c.created_at, deliveries.c.delivered_at).where(
                        deliveries.c.event_id.in_(list(sent))
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return {
        "fact_to_scheduled_ms": percentiles_ms([(r.created_at - r.event_time).total_seconds() for r in rows]),
        "scheduled_to_delivered_ms": percentiles_ms(
            [(r.delivered_at - r.created_at).total_seconds() for r in rows if r.delivered_at]
        ),
    }


def room_chain_steps(sent: dict[str, float], answered: dict[str, float], rooms: int) -> list[float]:
    """A room's queue at work: for each event that was already on Kafka when the one before it in its room
    was answered, the time from that answer to its own (its attempt, and before it the wait for the
    previous outcome's commit and the launch). Events go round robin over the rooms in publishing order."""
    order = list(sent)
    steps = []
    for index in range(rooms, len(order)):
        earlier, later = order[index - rooms], order[index]
        if sent[later] <= answered[earlier]:
            steps.append(answered[later] - answered[earlier])
    return steps


def joined(biz_name: str, room_id: str, index: int) -> StagedEvent:
    event = room_events.ParticipantJoined(
        room_id=room_id, biz_name=biz_name, uid=f"u{index}", joined_at=timestamp(datetime.now(UTC))
    )
    return StagedEvent(
        event_id=str(uuid.uuid4()),
        topic=Topic.ROOM,
        key=room_id,
        event_type=event.DESCRIPTOR.full_name,
        payload=event.SerializeToString(),
        time=datetime.now(UTC),
    )


async def publish(
    publisher: EventPublisher, biz_name: str, rate: int, rooms: int, count: int, sent: dict[str, float]
) -> None:
    """`count` facts at `rate` per second, round robin over `rooms` (each room's in order), in batches every
    PUBLISH_TICK_S: what is due goes in one `publish_many`, and each fact is stamped with the time its
    batch's acknowledgements came back (the latest of the batch's produce requests, one per partition:
    never before its own). One fact per call cost this process about 0.3 ms of CPU per fact, CPU the
    dispatcher needs on this machine; batches of 10 ms are what a producer's linger would make anyway."""
    started = time.monotonic()
    published = 0
    while published < count:
        due = min(count, int((time.monotonic() - started) * rate) + 1)
        batch = [joined(biz_name, f"room-{index % rooms}", index // rooms) for index in range(published, due)]
        await publisher.publish_many([(event, {}) for event in batch])
        acknowledged = time.time()
        for event in batch:
            sent[event.event_id] = acknowledged
        published = due
        await asyncio.sleep(PUBLISH_TICK_S)


async def run(rate: int, rooms: int, seconds: float, database_url: str, replicas: int) -> dict[str, Any]:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    port = free_port()
    receiver = Receiver(port)
    await receiver.start()
    try:
        return await run_with_receiver(receiver, rate, rooms, seconds, database_url, replicas)
    finally:
        await receiver.stop()


async def run_with_receiver(
    receiver: Receiver, rate: int, rooms: int, seconds: float, database_url: str, replicas: int
) -> dict[str, Any]:
    port = receiver.port
    with tempfile.TemporaryDirectory() as data_dir:
        settings = {"webhooks": {"allowed_targets": "127.0.0.1/32"}, "log_level": "WARNING"}
        async with start_platform(
            Path(data_dir),
            Instance(ServiceName.LICENCE, process=True),
            *(Instance(ServiceName.WEBHOOKS, process=True) for _ in range(replicas)),
            settings=settings,
            database_url=database_url,
        ) as platform:
            app = (
                await platform.licence.CreateApp(
                    licence_pb2.CreateAppRequest(
                        name="bench",
                        settings=licence_pb2.AppSettings(
                            room_status_callback_url=f"http://127.0.0.1:{port}/"
                        ),
                    )
                )
            ).app
            # Spans nobody exports, not recorded (as in the services without an exporter).
            kafka = create_broker(
                platform.kafka, client_id="bench", tracer_provider=TracerProvider(sampler=ALWAYS_OFF)
            )
            await kafka.connect()
            publisher = EventPublisher(kafka, source="//parley/rooms")
            # Warm up: the dispatcher's consumer joins its group and learns the app.
            warm: dict[str, float] = {}
            await publish(publisher, app.biz_name, 1, 1, 1, warm)
            async with asyncio.timeout(120):
                await receiver.wait_for(warm)
            keys = ["webhooks", *(f"webhooks-{index}" for index in range(2, replicas + 1))]
            pids = [platform[key].process.pid for key in keys]  # type: ignore[union-attr]
            cpu_before = sum(stat_cpu_seconds(pid) for pid in pids)
            loop_before = sum(main_thread_cpu_seconds(pid) for pid in pids)
            every_before = processes_cpu()
            machine_before = machine_cpu_seconds()
            sent: dict[str, float] = {}
            started = time.monotonic()
            await publish(publisher, app.biz_name, rate, rooms, int(rate * seconds), sent)
            published_s = time.monotonic() - started
            delivered_while_publishing = sum(1 for event_id in sent if event_id in receiver.answered)
            async with asyncio.timeout(600):
                await receiver.wait_for(sent)
            drained_s = time.monotonic() - started
            cpu = sum(stat_cpu_seconds(pid) for pid in pids) - cpu_before
            loop = sum(main_thread_cpu_seconds(pid) for pid in pids) - loop_before
            every = cpu_by_process(every_before, processes_cpu(), dict(zip(pids, keys, strict=True)))
            machine_busy_s = machine_cpu_seconds() - machine_before
            stages = await schedule_stages(platform.settings.database_url_for(ServiceName.WEBHOOKS), sent)
            await kafka.stop()
    latencies = [receiver.answered[event_id] - at for event_id, at in sent.items()]
    steps = room_chain_steps(sent, receiver.answered, rooms)
    return {
        "machine": machine(),
        "note": "2 cores shared with other sessions' work (machine.load_average); dispatcher, licence, "
        "broker, receiver and publisher on the same 2 cores",
        "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        "rate_asked_per_s": rate,
        "rooms": rooms,
        "events": len(sent),
        "published_in_s": round(published_s, 2),
        "rate_published_per_s": round(len(sent) / published_s, 1),
        "delivered_while_publishing": delivered_while_publishing,
        "all_delivered_after_s": round(drained_s, 2),
        "deliveries_per_s": round(len(sent) / drained_s, 1),
        "requests": receiver.requests - len(warm),
        "fact_to_receiver_ms": percentiles_ms(latencies),
        **stages,
        # Answer of a room's event → answer of its next, when that next was waiting: what a room's queue
        # can clear per second is 1 / this; `room_chain_steps_waiting` how many of the events waited.
        "room_chain_step_ms": percentiles_ms(steps) if steps else {},
        "room_chain_steps_waiting": len(steps),
        "dispatchers": replicas,
        "dispatcher_cpu_s": round(cpu, 2),
        "dispatcher_cpu_ms_per_delivery": round(cpu * 1000 / len(sent), 3),
        "dispatcher_cpu_s_by_thread": {"event_loop": round(loop, 2), "other_threads": round(cpu - loop, 2)},
        # Every process of the bench over the same time (publishing and draining), and the whole machine's
        # busy time (other sessions' work included): who had the 2 cores.
        "cpu_s_by_process": every,
        "cpu_s_machine_busy": round(machine_busy_s, 2),
        "wall_s": round(drained_s, 2),
    }


async def measure(rate: int, rooms: int, seconds: float, database_url: str, replicas: int) -> dict[str, Any]:
    """`run` on `database_url`; "postgresql" means a fresh schema on the test server (tests/postgres.py)."""
    if database_url != "postgresql":
        return await run(rate, rooms, seconds, database_url, replicas)
    async with fresh_database_url("webhooks_bench") as url:
        return await run(rate, rooms, seconds, url, replicas)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url", default="")
    # Replicas share the schedule in one database: PostgreSQL (docs/webhooks.md).
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    result = asyncio.run(measure(args.rate, args.rooms, args.seconds, args.database_url, args.replicas))
    print(json.dumps(result, indent=2))
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    replicas = f", {args.replicas} dispatchers" if args.replicas > 1 else ""
    existing[f"{result['database']}, {args.rate} events/s, {args.rooms} rooms{replicas}"] = result
    args.output.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
