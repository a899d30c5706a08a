"""Events through a real Tansu broker: CloudEvents headers, trace context, explicit acknowledgement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace import TracerProvider
from parley.rooms.v1 import events_pb2

from services.core.events import (
    Envelope,
    EventBatchConsumer,
    EventConsumer,
    EventPublisher,
    RawEvent,
    StagedEvent,
    create_broker,
)
from services.core.topics import Topic
from tests.testing import running_broker


@pytest.fixture
async def broker(kafka: str) -> AsyncIterator[KafkaBroker]:
    broker = create_broker(kafka, client_id="events-test", tracer_provider=TracerProvider())
    yield broker
    await broker.stop()


def room_created(room_id: str) -> events_pb2.RoomCreated:
    return events_pb2.RoomCreated(room_id=room_id, biz_name="demo", creator_uid="u1", created_at=Timestamp())


async def wait_for(condition, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_published_event_arrives_decoded_with_its_cloudevents_attributes(broker: KafkaBroker) -> None:
    room_id = f"r-{uuid.uuid4()}"
    received: list[tuple[events_pb2.RoomCreated, Envelope]] = []
    consumer = EventConsumer(broker, Topic.ROOM, group_id=f"test-{uuid.uuid4()}")

    @consumer.on(events_pb2.RoomCreated)
    async def handle(event: events_pb2.RoomCreated, envelope: Envelope) -> None:
        if event.room_id == room_id:
            received.append((event, envelope))

    await broker.start()
    event_id = await EventPublisher(broker, source="//parley/test").publish(
        Topic.ROOM, room_created(room_id), key=room_id
    )
    await wait_for(lambda: received)
    event, envelope = received[0]
    assert event.creator_uid == "u1"
    assert envelope.id == event_id
    assert envelope.type == "parley.rooms.v1.RoomCreated"
    assert envelope.source == "//parley/test"
    assert envelope.time.endswith("Z")
    assert envelope.key == room_id


async def test_a_failing_handler_gets_the_event_again(broker: KafkaBroker) -> None:
    room_id = f"r-{uuid.uuid4()}"
    attempts: list[str] = []
    consumer = EventConsumer(broker, Topic.ROOM, group_id=f"test-{uuid.uuid4()}")

    @consumer.on(events_pb2.RoomCreated)
    async def handle(event: events_pb2.RoomCreated, envelope: Envelope) -> None:
        if event.room_id != room_id:
            return
        attempts.append(envelope.id)
        if len(attempts) == 1:
            raise ConnectionError("database briefly unavailable")

    await broker.start()
    await EventPublisher(broker, source="//parley/test").publish(
        Topic.ROOM, room_created(room_id), key=room_id
    )
    await wait_for(lambda: len(attempts) >= 2)
    assert attempts[0] == attempts[1]


async def test_an_undecodable_event_is_skipped_and_the_next_one_still_arrives(broker: KafkaBroker) -> None:
    room_id = f"r-{uuid.uuid4()}"
    received: list[str] = []
    consumer = EventConsumer(broker, Topic.ROOM, group_id=f"test-{uuid.uuid4()}")

    @consumer.on(events_pb2.RoomCreated)
    async def handle(event: events_pb2.RoomCreated, envelope: Envelope) -> None:
        received.append(event.room_id)

    await broker.start()
    poison = {"ce_id": str(uuid.uuid4()), "ce_type": "parley.rooms.v1.RoomCreated"}
    await broker.publish(b"\xff\xff\xff not protobuf", Topic.ROOM.value, key=room_id.encode(), headers=poison)
    await broker.publish(b"no headers at all", Topic.ROOM.value, key=room_id.encode())
    await EventPublisher(broker, source="//parley/test").publish(
        Topic.ROOM, room_created(room_id), key=room_id
    )
    await wait_for(lambda: room_id in received)


async def test_a_batch_consumer_gets_events_undecoded_in_order_and_a_failed_batch_again(
    tmp_path: Path,
) -> None:
    # A broker of its own: the group starts at the earliest offset and would read every test's facts.
    async with running_broker(tmp_path / "broker.log") as kafka:
        broker = create_broker(kafka, client_id="events-test", tracer_provider=TracerProvider())
        handled: list[list[RawEvent]] = []
        failed: list[list[RawEvent]] = []

        async def handle(events: list[RawEvent]) -> None:
            if not failed:
                failed.append(events)
                raise ConnectionError("database briefly unavailable")
            handled.append(events)

        EventBatchConsumer(broker, [Topic.ROOM], handle, group_id=f"test-{uuid.uuid4()}", max_wait_ms=50)
        try:
            await broker.start()
            await broker.publish(b"no headers at all", Topic.ROOM.value, key=b"room-1")
            publisher = EventPublisher(broker, source="//parley/test")
            ids = [
                await publisher.publish(Topic.ROOM, room_created(f"room-1-{index}"), key="room-1")
                for index in range(5)
            ]
            await wait_for(lambda: [e.envelope.id for batch in handled for e in batch] == ids, timeout_s=90)
        finally:
            await broker.stop()
    # The failed batch came again, whole: nothing after it was committed.
    assert {e.envelope.id for e in failed[0]} <= set(ids)
    first = handled[0][0]
    assert (first.envelope.type, first.envelope.key) == ("parley.rooms.v1.RoomCreated", "room-1")
    event = events_pb2.RoomCreated()
    event.ParseFromString(first.payload)
    assert event.room_id == "room-1-0"


async def test_published_many_events_carry_the_headers_of_one_published_alone_and_their_staged_trace(
    broker: KafkaBroker,
) -> None:
    room_id = f"r-{uuid.uuid4()}"
    records: list[list[tuple[str, bytes]]] = []

    @broker.subscriber(Topic.ROOM.value, group_id=f"test-{uuid.uuid4()}", auto_offset_reset="earliest")
    async def collect(message: KafkaMessage) -> None:
        if message.raw_message.key == room_id.encode():  # type: ignore[union-attr]
            records.append(list(message.raw_message.headers))  # type: ignore[union-attr]

    def staged(index: int) -> StagedEvent:
        return StagedEvent(
            event_id=str(uuid.uuid4()),
            topic=Topic.ROOM,
            key=room_id,
            event_type="parley.rooms.v1.RoomCreated",
            payload=room_created(room_id).SerializeToString(),
            time=datetime(2026, 12, 6, 8, 0, index, 123456, tzinfo=UTC),
        )

    staging_trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    publisher = EventPublisher(broker, source="//parley/test", tracer_provider=TracerProvider())
    await broker.start()
    await publisher.publish_serialized(staged(0))
    await publisher.publish_many([(staged(1), {"traceparent": staging_trace}), (staged(2), {})])
    await wait_for(lambda: len(records) == 3)

    alone, traced, untraced = ({name: value.decode() for name, value in record} for record in records)
    names = [[name for name, _ in record] for record in records]
    assert names[0] == names[1] == names[2], "\n".join(map(str, names))
    assert names[0][-1] == "traceparent"
    for record in (alone, traced, untraced):
        assert record["correlation_id"] == record["ce_id"]
        assert (record["ce_type"], record["ce_source"], record["ce_specversion"], record["content-type"]) == (
            "parley.rooms.v1.RoomCreated",
            "//parley/test",
            "1.0",
            "application/protobuf",
        )
    assert [alone["ce_time"], traced["ce_time"], untraced["ce_time"]] == [
        f"2026-12-06T08:00:0{index}.123Z" for index in range(3)
    ]
    # Sent under a PRODUCER span of its own, in the trace that staged it.
    _, trace_id, span_id, _ = traced["traceparent"].split("-")
    _, staging_trace_id, staging_span_id, _ = staging_trace.split("-")
    assert (trace_id, span_id != staging_span_id) == (staging_trace_id, True)
    # Without a staged trace, its PRODUCER span starts a trace of its own.
    assert untraced["traceparent"].startswith("00-") and staging_trace_id not in untraced["traceparent"]
