"""What the billing tests share: publishing generated facts to the real broker, waiting until billing's
database says it has read up to the end of its topics, and reading figures over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from parley.billing.v1 import billing_pb2, billing_pb2_grpc
from parley.relay.v1 import metering_pb2
from sqlalchemy import select

from services.billing import store
from services.billing.app import TOPICS
from services.core.db import create_engine
from services.core.topics import Topic
from tests.integration.billing.generator import TIER_LABELS, Fact
from tests.postgres import fresh_database_url

CALL_FIELDS = ("audio", "p360", "p540", "p720", "p1080")


@asynccontextmanager
async def billing_database(kind: str, data_dir: str) -> AsyncIterator[str]:
    """The database URL billing is given: a SQLite file, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir}/billing.db"
        return
    async with fresh_database_url("billing") as url:
        yield url


async def publish(kafka: str, facts: Sequence[Fact], *, pause_every: int = 0, pause_s: float = 0.0) -> None:
    """Send the facts as the services do (key, CloudEvents headers) and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for index, fact in enumerate(facts, 1):
            headers = [
                ("ce_id", fact.ce_id.encode()),
                ("ce_type", fact.ce_type.encode()),
                ("ce_source", b"//parley/tests"),
                ("ce_specversion", b"1.0"),
            ]
            pending.append(
                await producer.send(fact.topic, fact.payload, key=fact.key.encode(), headers=headers)
            )
            if pause_every and index % pause_every == 0:
                await asyncio.gather(*pending)
                pending.clear()
                await asyncio.sleep(pause_s)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def end_offsets(kafka: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in TOPICS
            for partition in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        ]
        return await _past_last_records(consumer, await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _past_last_records(
    consumer: AIOKafkaConsumer, reported: dict[TopicPartition, int]
) -> dict[tuple[str, int], int]:
    """The offset after each partition's last record. Tansu answers a partition's end as the base offset of
    its last record batch plus one, not past the batch's last record: a test that waited for that offset
    could go on while the consumer still had most of the last batch to write. Reading from there gives the
    whole last batch, and its last offset."""
    ends = {(tp.topic, tp.partition): offset for tp, offset in reported.items()}
    wanted = [tp for tp, offset in reported.items() if offset]
    if not wanted:
        return ends
    consumer.assign(wanted)
    for tp in wanted:
        consumer.seek(tp, reported[tp] - 1)
    async with asyncio.timeout(60):
        while wanted:
            for tp, records in (await consumer.getmany(*wanted, timeout_ms=1000)).items():
                if records:
                    ends[(tp.topic, tp.partition)] = max(
                        ends[(tp.topic, tp.partition)], records[-1].offset + 1
                    )
                    wanted.remove(tp)
    return ends


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # the topics exist; metadata may not be loaded yet
    return consumer.partitions_for_topic(topic) or set()


async def wait_until_read(database_url: str, ends: dict[tuple[str, int], int], timeout_s: float) -> None:
    """Until billing's stored offsets reach `ends` on every partition (what it wrote is what it read)."""
    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    async with engine.connect() as connection:
                        stored = {
                            (row.topic, row.partition): row.next_offset
                            for row in await connection.execute(select(store.offsets))
                        }
                except Exception:  # the tables may not exist yet, or the service is mid-migration
                    stored = {}
                if all(stored.get(key, 0) >= end for key, end in ends.items() if end):
                    return
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def figures_json(figures: billing_pb2.UsageFigures) -> dict[str, object]:
    """gRPC figures in the HTTP API's JSON shape, to compare with the generator's truth."""
    call = [getattr(figures.call_ms, name) for name in CALL_FIELDS]
    plain = MessageToDict(
        figures, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {
        "callMs": dict(zip(TIER_LABELS, call, strict=True)),
        "onlineMs": int(plain["online_ms"]),
        "publishedStreamMs": int(plain["published_stream_ms"]),
        "subscribedStreamMs": int(plain["subscribed_stream_ms"]),
        "rooms": int(plain["rooms"]),
        "peakRooms": int(plain["peak_rooms"]),
        "onlineUsers": int(plain["online_users"]),
        "callUsers": int(plain["call_users"]),
        "peakOnlineUsers": int(plain["peak_online_users"]),
        "peakCallUsers": int(plain["peak_call_users"]),
        "billableMinutes": int(plain["billable_minutes"]),
    }


async def overview(stub: billing_pb2_grpc.BillingServiceStub, biz_name: str, day: date) -> dict[str, object]:
    answer = await stub.GetUsageOverview(
        billing_pb2.UsageRequest(biz_name=biz_name, start_date=day.isoformat(), end_date=day.isoformat())
    )
    return figures_json(answer.figures)


def stream_ms(ticks: list[metering_pb2.MeteringTick]) -> dict[str, int]:
    """Published and subscribed stream time as the ticks say, each stream from its first tick's start to
    its last tick's end (its tracks run side by side; a relay's ticks of a track share their boundaries)."""
    spans: dict[str, list[metering_pb2.MeteringTick]] = {}
    for tick in ticks:
        spans.setdefault(tick.stream_id, []).append(tick)
    totals = {"published": 0, "subscribed": 0}
    for pieces in spans.values():
        start = min(_ms(t.start_time) for t in pieces)
        end = max(_ms(t.end_time) for t in pieces)
        role = "published" if pieces[0].role == metering_pb2.STREAM_ROLE_PUBLICATION else "subscribed"
        totals[role] += end - start
    return totals


def _ms(stamp: Timestamp) -> int:
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


class TickRecorder:
    """The metering ticks of one app published after it started, as they arrive."""

    def __init__(self, consumer: AIOKafkaConsumer, biz_name: str) -> None:
        self._consumer = consumer
        self._biz_name = biz_name
        self.ticks: list[metering_pb2.MeteringTick] = []

    async def read(self) -> None:
        while True:
            for messages in (await self._consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    tick = metering_pb2.MeteringTick.FromString(message.value or b"")
                    if tick.biz_name == self._biz_name:
                        self.ticks.append(tick)

    async def until_read(self, ends: dict[tuple[str, int], int], timeout_s: float = 30) -> None:
        """Until it has read the metering topic up to `ends` (end_offsets())."""
        async with asyncio.timeout(timeout_s):
            for (topic, partition), end in ends.items():
                if topic == Topic.METERING.value:
                    while await self._consumer.position(TopicPartition(topic, partition)) < end:
                        await asyncio.sleep(0.05)


@asynccontextmanager
async def recording_ticks(kafka: str, biz_name: str) -> AsyncIterator[TickRecorder]:
    """Ticks read from the topic's end (not from its start as a new consumer group would): on a session's
    broker the topic holds every earlier test's ticks, and reading those first can take longer than a call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(Topic.METERING.value, p)
            for p in consumer.partitions_for_topic(Topic.METERING.value)
            or await _partitions(consumer, Topic.METERING.value)
        ]
        consumer.assign(partitions)
        for tp, offset in (await consumer.end_offsets(partitions)).items():
            consumer.seek(tp, offset)
        recorder = TickRecorder(consumer, biz_name)
        reader = asyncio.create_task(recorder.read())
        try:
            yield recorder
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await consumer.stop()
