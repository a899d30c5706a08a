"""Webhook dispatcher throughput and latency: room facts published on Kafka at a fixed rate across many
rooms, delivered as seed room-status callbacks to a local receiver.

    .venv/bin/python bench/webhooks.py [--rate 1000] [--rooms 100] [--seconds 10] [--database-url URL]
                                       [--replicas N]

`--database-url postgresql`: a fresh schema on the test PostgreSQL (tests/postgres.py); default SQLite.
`--replicas 2`: two dispatcher processes sharing the facts (one consumer group) and the schedule (use
PostgreSQL: replicas share one database).

Runs a Tansu broker, the licence service and the webhook dispatcher as processes (tests/testing.py's
platform), and in this process a uvicorn receiver answering `{bizRequestId, code: 0}` and the publisher.
Latency is from the moment the broker acknowledged a fact to the moment the receiver answered it (one
clock: both ends are in this process). Throughput is deliveries acknowledged per second while facts came
in, and after (the backlog drained). CPU is the dispatcher processes' user+system time over the run, and
that of their main threads (the event loop) apart from their other threads (the database driver's).
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
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

# The services are forked from this process while its gRPC channels are busy: gRPC's fork handlers then
# break the child between fork and exec now and then ("epoll_wait error: Bad file descriptor").
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from parley.licence.v1 import licence_pb2  # noqa: E402
from parley.rooms.v1 import events_pb2 as room_events  # noqa: E402
from platform_process import percentiles_ms  # noqa: E402
from process_cpu import main_thread_cpu_seconds, stat_cpu_seconds  # noqa: E402
from sqlalchemy import select  # noqa: E402

from services.cli.webhook_commands import read_body  # noqa: E402
from services.core.config import ServiceName  # noqa: E402
from services.core.db import create_engine  # noqa: E402
from services.core.embedded_broker import free_port  # noqa: E402
from services.core.events import EventPublisher, create_broker  # noqa: E402
from services.core.timestamps import timestamp  # noqa: E402
from services.core.topics import Topic  # noqa: E402
from services.webhooks.store import deliveries  # noqa: E402
from tests.postgres import fresh_database_url  # noqa: E402
from tests.testing import Instance, start_platform  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "webhooks.json"


class Receiver:
    def __init__(self) -> None:
        self.answered: dict[str, float] = {}
        self.requests = 0
        self._answer = asyncio.Event()

    async def wait_for(self, event_ids: Iterable[str]) -> None:
        missing = set(event_ids)
        while True:
            missing -= self.answered.keys()
            if not missing:
                return
            self._answer.clear()
            await self._answer.wait()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        biz_request_id = json.loads(body)["bizRequestId"]
        answer = json.dumps({"bizRequestId": biz_request_id, "code": 0}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        self.requests += 1
        self.answered.setdefault(biz_request_id, time.time())
        self._answer.set()


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


async def publish_room(
    publisher: EventPublisher,
    biz_name: str,
    room_id: str,
    count: int,
    interval_s: float,
    start: float,
    sent: dict[str, float],
) -> None:
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index * interval_s - time.monotonic()))
        event = room_events.ParticipantJoined(
            room_id=room_id, biz_name=biz_name, uid=f"u{index}", joined_at=timestamp(datetime.now(UTC))
        )
        event_id = await publisher.publish(Topic.ROOM, event, key=room_id)
        sent[event_id] = time.time()


async def run(rate: int, rooms: int, seconds: float, database_url: str, replicas: int) -> dict[str, Any]:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
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
            kafka = create_broker(platform.kafka, client_id="bench", tracer_provider=TracerProvider())
            await kafka.connect()
            publisher = EventPublisher(kafka, source="//parley/rooms")
            # Warm up: the dispatcher's consumer joins its group and learns the app.
            warm: dict[str, float] = {}
            await publish_room(publisher, app.biz_name, "warm-up", 1, 0, time.monotonic(), warm)
            async with asyncio.timeout(120):
                await receiver.wait_for(warm)
            keys = ["webhooks", *(f"webhooks-{index}" for index in range(2, replicas + 1))]
            pids = [platform[key].process.pid for key in keys]  # type: ignore[union-attr]
            cpu_before = sum(stat_cpu_seconds(pid) for pid in pids)
            loop_before = sum(main_thread_cpu_seconds(pid) for pid in pids)
            sent: dict[str, float] = {}
            per_room = int(rate * seconds / rooms)
            interval = rooms / rate
            started = time.monotonic()
            await asyncio.gather(
                *(
                    publish_room(
                        publisher,
                        app.biz_name,
                        f"room-{r}",
                        per_room,
                        interval,
                        started + r * interval / rooms,
                        sent,
                    )
                    for r in range(rooms)
                )
            )
            published_s = time.monotonic() - started
            delivered_while_publishing = sum(1 for event_id in sent if event_id in receiver.answered)
            async with asyncio.timeout(600):
                await receiver.wait_for(sent)
            drained_s = time.monotonic() - started
            cpu = sum(stat_cpu_seconds(pid) for pid in pids) - cpu_before
            loop = sum(main_thread_cpu_seconds(pid) for pid in pids) - loop_before
            stages = await schedule_stages(platform.settings.database_url_for(ServiceName.WEBHOOKS), sent)
            await kafka.stop()
    server.should_exit = True
    await serving
    latencies = [receiver.answered[event_id] - at for event_id, at in sent.items()]
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
        "dispatchers": replicas,
        "dispatcher_cpu_s": round(cpu, 2),
        "dispatcher_cpu_ms_per_delivery": round(cpu * 1000 / len(sent), 3),
        "dispatcher_cpu_s_by_thread": {"event_loop": round(loop, 2), "other_threads": round(cpu - loop, 2)},
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
