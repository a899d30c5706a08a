"""The outbox against a real SQLite database and a real Tansu broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace import TracerProvider
from parley.rooms.v1 import events_pb2
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.db import create_engine
from services.core.events import Envelope, EventConsumer, EventPublisher, create_broker
from services.core.outbox import Outbox, outbox_table
from services.core.topics import Topic

metadata = MetaData()
table = outbox_table(metadata, "test_outbox")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def received(kafka: str) -> AsyncIterator[tuple[KafkaBroker, list[tuple[str, str]]]]:
    """A broker whose consumer collects (room_id, ce_id) of every RoomCreated."""
    broker = create_broker(kafka, client_id="outbox-test", tracer_provider=TracerProvider())
    seen: list[tuple[str, str]] = []
    consumer = EventConsumer(broker, Topic.ROOM, group_id=f"outbox-{uuid.uuid4()}")

    @consumer.on(events_pb2.RoomCreated)
    async def collect(event: events_pb2.RoomCreated, envelope: Envelope) -> None:
        seen.append((event.room_id, envelope.id))

    await broker.start()
    yield broker, seen
    await broker.stop()


def created(room_id: str) -> events_pb2.RoomCreated:
    return events_pb2.RoomCreated(room_id=room_id, biz_name="demo", creator_uid="u", created_at=Timestamp())


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_committed_event_is_published_with_the_id_it_was_staged_with(engine, received) -> None:
    broker, seen = received
    outbox = Outbox(table, engine, EventPublisher(broker, source="//parley/test"), poll_interval_s=0.2)
    await outbox.start()
    room = f"r-{uuid.uuid4()}"
    async with engine.begin() as connection:
        event_id = await outbox.stage(connection, Topic.ROOM, created(room), key=room)
    outbox.notify()
    async with asyncio.timeout(30):
        while (room, event_id) not in seen:
            await asyncio.sleep(0.05)
    await outbox.stop()
    assert await pending(engine) == 0


async def test_a_rolled_back_event_is_never_published(engine, received) -> None:
    broker, seen = received
    outbox = Outbox(table, engine, EventPublisher(broker, source="//parley/test"), poll_interval_s=0.2)
    await outbox.start()
    ghost, marker = f"r-{uuid.uuid4()}", f"r-{uuid.uuid4()}"
    with pytest.raises(RuntimeError):
        async with engine.begin() as connection:
            await outbox.stage(connection, Topic.ROOM, created(ghost), key=ghost)
            raise RuntimeError("the change failed")
    async with engine.begin() as connection:
        await outbox.stage(connection, Topic.ROOM, created(marker), key=marker)
    outbox.notify()
    async with asyncio.timeout(30):
        while not any(room == marker for room, _ in seen):
            await asyncio.sleep(0.05)
    await outbox.stop()
    assert not any(room == ghost for room, _ in seen)


async def test_events_staged_before_a_crash_are_published_by_the_next_relay(engine, received) -> None:
    broker, seen = received
    publisher = EventPublisher(broker, source="//parley/test")
    rooms = [f"r-{uuid.uuid4()}" for _ in range(3)]
    # No relay runs: the process "died" after committing.
    staged = Outbox(table, engine, publisher)
    async with engine.begin() as connection:
        ids = [await staged.stage(connection, Topic.ROOM, created(room), key=room) for room in rooms]
    assert await pending(engine) == 3

    restarted = Outbox(table, engine, publisher, poll_interval_s=0.2)
    await restarted.start()
    async with asyncio.timeout(30):
        while not set(zip(rooms, ids, strict=True)) <= set(seen):
            await asyncio.sleep(0.05)
    await restarted.stop()
    assert await pending(engine) == 0
