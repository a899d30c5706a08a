"""Billing's exactly-once ingest of metering ticks (issue #10): ticks per second aggregated into the ledger
with their offsets in one transaction per batch, on SQLite and PostgreSQL, beside a naive consumer that
commits one transaction per tick; and the consumer's memory over the whole run.

    .venv/bin/python bench/billing_ingest.py [--ticks 300000] [--naive-ticks 20000]
                                             [--databases sqlite postgresql] [--out billing_ingest.json]

The ticks (30 % of them published twice, like the tests' redeliveries) are published to a Tansu broker
first, by a child process that makes them as it sends them (a stream shuffled within a window of
`SHUFFLE_WINDOW` messages, so any count fits in bounded memory: `--ticks 10000000` is the memory check of
the issue). Then each consumer reads them from the beginning, in this process pinned to one CPU, until the
offsets in its database reach the end of the topic. Ticks per second are counted on the consumer's CPU
time (time.process_time: the shared machine's other load does not count) and on wall time. RSS is sampled
every second and kept as a series (every `--rss-every` seconds: seconds, messages stored, MB). Writes
bench/results/<out>.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from parley.relay.v1 import media_pb2, metering_pb2
from sqlalchemy import case, func, select, text
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


SHUFFLE_WINDOW = 200_000
DUPLICATES = 0.3
STREAMS_AT_ONCE = 200


def ticks(count: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, payload) of `count` distinct ticks, made as they are asked for: streams of 360 ten-second
    ticks (an hour) across 20 apps, `STREAMS_AT_ONCE` streams an hour, each of a different user."""
    rng = random.Random(seed)
    made = 0
    base = 1_796_000_000_000
    for stream in range(-(-count // 360)):
        stream_id = str(uuid.UUID(int=rng.getrandbits(128)))
        biz, room, uid = f"bench{stream % 20}", f"room{stream % 500}", f"user{stream % 2000}"
        start = base + (stream // STREAMS_AT_ONCE) * 3_600_000
        video = stream % 3 != 0
        for sequence in range(1, 361):
            if made == count:
                return
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
            tick.start_time.FromMilliseconds(start + (sequence - 1) * 10_000)
            tick.end_time.FromMilliseconds(start + sequence * 10_000)
            made += 1
            yield room.encode(), tick.SerializeToString()


def shuffled_with_duplicates(
    messages: Iterator[tuple[bytes, bytes]], seed: int
) -> Iterator[tuple[bytes, bytes]]:
    """The messages with `DUPLICATES` of them twice, in an order shuffled within a window of
    `SHUFFLE_WINDOW` (a duplicate may come before its original): memory bounded by the window."""
    rng = random.Random(seed)
    window: list[tuple[bytes, bytes]] = []

    def take() -> tuple[bytes, bytes]:
        index = rng.randrange(len(window))
        window[index], window[-1] = window[-1], window[index]
        return window.pop()

    for message in messages:
        window.append(message)
        if rng.random() < DUPLICATES:
            window.append(message)
        while len(window) >= SHUFFLE_WINDOW:
            yield take()
    while window:
        yield take()


async def publish(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    sent = 0
    try:
        headers = [("ce_type", CE_TYPE)]
        pending = []
        for key, payload in messages:
            pending.append(await producer.send(topic, payload, key=key, headers=headers))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if sent % 1_000_000 == 0:
                print(f"published {sent}", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def publish_in_child(
    bootstrap: str, topic: str, count: int, naive_count: int, naive_topic: str, sent: Any
) -> None:
    """Runs in a child process, so the consumer's RSS holds nothing of the producer's; puts how many
    messages went to each topic on the `sent` queue."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def both() -> None:
        sent.put(await publish(bootstrap, topic, shuffled_with_duplicates(ticks(count, seed=1), seed=1)))
        naive = itertools.islice(shuffled_with_duplicates(ticks(naive_count, seed=2), seed=2), naive_count)
        sent.put(await publish(bootstrap, naive_topic, naive))

    asyncio.run(both())


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


async def stored(ledger_engine: AsyncEngine) -> int:
    """How many messages the database holds the offsets past (offsets are dense: a partition's next
    offset is how many of its messages were read). The broker's end offsets are not used: Tansu answers
    the base offset of a partition's last batch, plus one."""
    async with ledger_engine.connect() as connection:
        total = select(func.coalesce(func.sum(store.offsets.c.next_offset), 0))
        return int((await connection.execute(total)).scalar_one())


async def measure(run: Any, engine: AsyncEngine, count: int, rss_every_s: float) -> dict[str, Any]:
    """CPU and wall time until the database holds the offsets of the topic's end; RSS every second, kept
    as a series every `rss_every_s`."""
    samples = [rss_mb()]
    cpu, wall = time.process_time(), time.monotonic()
    series = [[0.0, 0, samples[0]]]
    task = asyncio.create_task(run())
    try:
        next_sample, next_kept = wall + 1, wall + rss_every_s
        while (done := await stored(engine)) < count:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if now >= next_sample:
                samples.append(rss_mb())
                next_sample += 1
            if now >= next_kept:
                series.append([round(now - wall, 1), done, round(samples[-1], 1)])
                next_kept += rss_every_s
                print(f"  {series[-1]}", flush=True)
            if task.done():
                task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    samples.append(rss_mb())
    series.append([round(wall, 1), count, round(samples[-1], 1)])
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
        "rss_series": {"columns": ["seconds", "messages_stored", "rss_mb"], "rows": series},
    }


async def exactly_once(
    bootstrap: str, topic: str, url: str, count: int, rss_every_s: float
) -> dict[str, Any]:
    engine = store.open_engine(url)
    await upgrade_to_head(engine, "services.billing")
    ledger = UsageLedger(engine, Rating(None), lateness=timedelta(days=3650))
    consumer = ExactlyOnceConsumer(bootstrap, ledger, group_id=f"bench-{uuid.uuid4()}", topics=[topic])

    async def run() -> None:
        await consumer.start()
        try:
            await asyncio.Event().wait()
        finally:
            await consumer.stop()

    try:
        return await measure(run, engine, count, rss_every_s)
    finally:
        await engine.dispose()


async def naive(bootstrap: str, topic: str, url: str, count: int, rss_every_s: float) -> dict[str, Any]:
    """One transaction per tick: the tick's row and its offset (still exactly once, just slow)."""
    engine = store.open_engine(url)
    await upgrade_to_head(engine, "services.billing")

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
        return await measure(run, engine, count, rss_every_s)
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        broker = EmbeddedBroker(log_path=folder / "broker.log")
        await broker.start()
        try:
            results: dict[str, Any] = {
                "machine": machine(),
                "ticks": args.ticks,
                "duplicates": DUPLICATES,
                "shuffle_window": SHUFFLE_WINDOW,
                "runs": {},
            }
            main_topic = f"bench.metering.{uuid.uuid4().hex[:8]}"
            naive_topic = f"bench.naive.{uuid.uuid4().hex[:8]}"
            for topic in (main_topic, naive_topic):
                await create_topic(broker.bootstrap_servers, topic)
            started = time.monotonic()
            context = multiprocessing.get_context("spawn")
            sent = context.Queue()
            child = context.Process(
                target=publish_in_child,
                args=(broker.bootstrap_servers, main_topic, args.ticks, args.naive_ticks, naive_topic, sent),
            )
            child.start()
            await asyncio.to_thread(child.join)
            if child.exitcode != 0:
                raise RuntimeError(f"the publisher failed ({child.exitcode})")
            messages, naive_messages = sent.get(), sent.get()
            results["messages"] = messages
            results["publish_s"] = round(time.monotonic() - started)
            print(f"published in {results['publish_s']} s", flush=True)
            # The consumer alone on CPU 1; the broker and the rest of the machine elsewhere.
            os.sched_setaffinity(0, {os.cpu_count() - 1 if os.cpu_count() else 0})
            for kind in args.databases:
                url, drop = await fresh_database(kind, folder)
                try:
                    run = await exactly_once(
                        broker.bootstrap_servers, main_topic, url, messages, args.rss_every
                    )
                finally:
                    if drop:
                        await drop()
                print(kind, "exactly-once batched", {k: v for k, v in run.items() if k != "rss_series"})
                results["runs"][kind] = {"exactly_once_batched": run}
                if args.naive_ticks:
                    url, drop = await fresh_database(kind, folder)
                    try:
                        slow = await naive(
                            broker.bootstrap_servers, naive_topic, url, naive_messages, args.rss_every
                        )
                    finally:
                        if drop:
                            await drop()
                    print(kind, "naive one transaction per tick", slow, flush=True)
                    results["runs"][kind]["naive_transaction_per_tick"] = slow
            results["load_average_end"] = os.getloadavg()
        finally:
            broker.stop()
    return results


def write(results: dict[str, Any], name: str) -> None:
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks", type=int, default=300_000, help="distinct ticks (30 %% more are duplicates)"
    )
    parser.add_argument(
        "--naive-ticks", type=int, default=20_000, help="messages the naive consumer reads (0: none)"
    )
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--rss-every", type=float, default=5.0, help="seconds between kept RSS samples")
    parser.add_argument("--out", default="billing_ingest.json", help="file name under bench/results")
    arguments = parser.parse_args()
    write(asyncio.run(main(arguments)), arguments.out)
