"""Billing's exactly-once ingest of metering ticks (issue #10): ticks per second aggregated into the ledger
with their offsets in one transaction per batch, on SQLite and PostgreSQL, beside a naive consumer that
commits one transaction per tick; and the consumer's memory over the whole run.

    .venv/bin/python bench/billing_ingest.py [--ticks 300000] [--naive-ticks 20000]
                                             [--databases sqlite postgresql]

The ticks (30 % of them published twice, like the tests' redeliveries) are published to a Tansu broker
first; then each consumer reads them from the beginning, in this process pinned to one CPU, until the
offsets in its database reach the end of the topic. Ticks per second are counted on the consumer's CPU
time (time.process_time: the shared machine's other load does not count) and on wall time. RSS is sampled
every second. Writes bench/results/billing_ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from parley.relay.v1 import media_pb2, metering_pb2
from sqlalchemy import case, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

from services.billing import store  # noqa: E402
from services.billing.accounts import Rating  # noqa: E402
from services.billing.consumer import ExactlyOnceConsumer  # noqa: E402
from services.billing.inputs import Batch  # noqa: E402
from services.billing.ledger import UsageLedger  # noqa: E402
from services.billing.queries import lock_apps, upsert  # noqa: E402
from services.core.embedded_broker import EmbeddedBroker  # noqa: E402
from services.core.migrations import upgrade_to_head  # noqa: E402

POSTGRES_ADMIN = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TIERS = [media_pb2.RESOLUTION_TIER_360P, media_pb2.RESOLUTION_TIER_720P, media_pb2.RESOLUTION_TIER_1080P]
CE_TYPE = metering_pb2.MeteringTick.DESCRIPTOR.full_name.encode()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ticks(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, payload) of `count` distinct ticks: streams of 360 ten-second ticks across 20 apps."""
    rng = random.Random(seed)
    out = []
    start = 1_796_000_000_000
    for stream in range(-(-count // 360)):
        stream_id = str(uuid.uuid4())
        biz, room, uid = f"bench{stream % 20}", f"room{stream % 500}", f"user{stream % 2000}"
        video = stream % 3 != 0
        for sequence in range(1, 361):
            if len(out) == count:
                return out
            tick = metering_pb2.MeteringTick(
                tick_id=f"{stream_id}:{'video' if video else 'audio'}:{sequence}",
                biz_name=biz,
                room_id=room,
                uid=uid,
                feed_id=stream_id,
                role=metering_pb2.STREAM_ROLE_SUBSCRIPTION,
                stream_id=stream_id,
                kind=media_pb2.MEDIA_KIND_VIDEO if video else media_pb2.MEDIA_KIND_AUDIO,
                tier=rng.choice(TIERS) if video else media_pb2.RESOLUTION_TIER_AUDIO,
                duration_ms=10_000,
                bytes=rng.randrange(10_000, 2_000_000),
                sequence=sequence,
            )
            tick.start_time.FromMilliseconds(start + sequence * 10_000)
            tick.end_time.FromMilliseconds(start + (sequence + 1) * 10_000)
            out.append((room.encode(), tick.SerializeToString()))
    return out


async def publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        headers = [("ce_type", CE_TYPE)]
        pending = []
        for key, payload in messages:
            pending.append(await producer.send(topic, payload, key=key, headers=headers))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()


async def fresh_database(kind: str, folder: Path) -> tuple[str, Any]:
    """A URL on an empty database, and how to drop it."""
    if kind == "sqlite":
        path = folder / f"billing-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite+aiosqlite:///{path}", None
    role = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(POSTGRES_ADMIN)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        await connection.execute(text(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"'))

    async def drop() -> None:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{role}" CASCADE'))
            await connection.execute(text(f'DROP ROLE "{role}"'))
        await admin.dispose()

    return make_url(POSTGRES_ADMIN).set(username=role).render_as_string(hide_password=False), drop


async def caught_up(ledger_engine: AsyncEngine, ends: dict[tuple[str, int], int]) -> bool:
    async with ledger_engine.connect() as connection:
        stored = {
            (r.topic, r.partition): r.next_offset for r in await connection.execute(select(store.offsets))
        }
    return all(stored.get(key, 0) >= end for key, end in ends.items())


async def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def measure(
    run: Any, engine: AsyncEngine, ends: dict[tuple[str, int], int], count: int
) -> dict[str, Any]:
    """CPU and wall time until the database holds the offsets of the topic's end; RSS every second."""
    samples = [rss_mb()]
    cpu, wall = time.process_time(), time.monotonic()
    task = asyncio.create_task(run())
    try:
        next_sample = wall + 1
        while not await caught_up(engine, ends):
            await asyncio.sleep(0.2)
            if time.monotonic() >= next_sample:
                samples.append(rss_mb())
                next_sample += 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    samples.append(rss_mb())
    return {
        "messages": count,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "messages_per_cpu_s": round(count / cpu),
        "messages_per_wall_s": round(count / wall),
        "rss_mb": {
            "start": round(samples[0], 1),
            "after_10pct": round(samples[max(1, len(samples) // 10)], 1),
            "middle": round(samples[len(samples) // 2], 1),
            "end": round(samples[-1], 1),
            "max": round(max(samples), 1),
        },
    }


async def exactly_once(bootstrap: str, topic: str, url: str, count: int) -> dict[str, Any]:
    engine = store.open_engine(url)
    await upgrade_to_head(engine, "services.billing")
    ledger = UsageLedger(engine, Rating(None), lateness=timedelta(days=3650))
    consumer = ExactlyOnceConsumer(bootstrap, ledger, group_id=f"bench-{uuid.uuid4()}", topics=[topic])
    ends = await end_offsets(bootstrap, topic)

    async def run() -> None:
        await consumer.start()
        try:
            await asyncio.Event().wait()
        finally:
            await consumer.stop()

    try:
        return await measure(run, engine, ends, count)
    finally:
        await engine.dispose()


async def naive(bootstrap: str, topic: str, url: str, count: int) -> dict[str, Any]:
    """One transaction per tick: the tick's row and its offset (still exactly once, just slow)."""
    engine = store.open_engine(url)
    await upgrade_to_head(engine, "services.billing")
    ends = await end_offsets(bootstrap, topic)

    async def run() -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"naive-{uuid.uuid4()}",
                                    enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            async for message in consumer:
                batch = Batch()
                batch.add(CE_TYPE.decode(), message.value)
                async with engine.begin() as connection:
                    await lock_apps(connection, batch.biz_names(), datetime.now(UTC))
                    await connection.execute(
                        upsert(connection, store.ticks).on_conflict_do_nothing(index_elements=["tick_id"]),
                        list(batch.ticks.values()),
                    )
                    statement = upsert(connection, store.offsets)
                    stored = store.offsets.c.next_offset
                    await connection.execute(
                        statement.on_conflict_do_update(
                            index_elements=["topic", "partition"],
                            set_={
                                "next_offset": case(
                                    (statement.excluded.next_offset > stored, statement.excluded.next_offset),
                                    else_=stored,
                                )
                            },
                        ),
                        {
                            "topic": message.topic,
                            "partition": message.partition,
                            "next_offset": message.offset + 1,
                        },
                    )
        finally:
            await consumer.stop()

    try:
        return await measure(run, engine, ends, count)
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        broker = EmbeddedBroker(log_path=folder / "broker.log")
        await broker.start()
        try:
            # The consumer alone on CPU 1; the broker and the rest of the machine elsewhere.
            os.sched_setaffinity(0, {os.cpu_count() - 1 if os.cpu_count() else 0})
            results: dict[str, Any] = {
                "machine": machine(),
                "ticks": args.ticks,
                "duplicates": 0.3,
                "runs": {},
            }
            rng = random.Random(1)
            messages = ticks(args.ticks, seed=1)
            messages += rng.sample(messages, int(len(messages) * 0.3))
            rng.shuffle(messages)
            main_topic = f"bench.metering.{uuid.uuid4().hex[:8]}"
            await create_topic(broker.bootstrap_servers, main_topic)
            started = time.monotonic()
            await publish(broker.bootstrap_servers, main_topic, messages)
            print(f"published {len(messages)} messages in {time.monotonic() - started:.0f} s", flush=True)
            naive_messages = messages[: args.naive_ticks]
            naive_topic = f"bench.naive.{uuid.uuid4().hex[:8]}"
            await create_topic(broker.bootstrap_servers, naive_topic)
            await publish(broker.bootstrap_servers, naive_topic, naive_messages)
            for kind in args.databases:
                url, drop = await fresh_database(kind, folder)
                try:
                    run = await exactly_once(broker.bootstrap_servers, main_topic, url, len(messages))
                finally:
                    if drop:
                        await drop()
                print(kind, "exactly-once batched", run, flush=True)
                url, drop = await fresh_database(kind, folder)
                try:
                    slow = await naive(broker.bootstrap_servers, naive_topic, url, len(naive_messages))
                finally:
                    if drop:
                        await drop()
                print(kind, "naive one transaction per tick", slow, flush=True)
                results["runs"][kind] = {"exactly_once_batched": run, "naive_transaction_per_tick": slow}
        finally:
            broker.stop()
    return results


def write(results: dict[str, Any]) -> None:
    out = Path(__file__).resolve().parent / "results" / "billing_ingest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks", type=int, default=300_000, help="distinct ticks (30 %% more are duplicates)"
    )
    parser.add_argument("--naive-ticks", type=int, default=20_000, help="messages the naive consumer reads")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    write(asyncio.run(main(parser.parse_args())))
