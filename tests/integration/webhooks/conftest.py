"""What the webhook tests share: an app whose callback URLs point at a receiver, and a publisher of room
facts straight onto Kafka (as the room manager would make them), and the dispatcher's database on both
engines."""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.rooms.v1 import events_pb2 as room_events
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.db import create_engine
from services.core.events import EventPublisher, create_broker
from services.core.migrations import upgrade_to_head
from services.core.timestamps import timestamp
from services.core.topics import Topic
from tests.integration.licence_helpers import App
from tests.integration.webhooks.receiver import Receiver
from tests.postgres import fresh_database_url

# The receivers listen on 127.0.0.1: the dispatcher refuses loopback unless it is allow-listed.
LOOPBACK_ALLOWED = {"webhooks": {"allowed_targets": "127.0.0.1/32"}}

# Retries come quickly here, and never run out while the receiver misbehaves.
FAST_RETRIES = {
    "retry_schedule": ",".join(["0"] + ["0.3"] * 400),
    "attempt_timeout_s": 1.0,
    "lease_s": 1.5,
}


def check_order(receiver: Receiver, expected: dict[str, list[str]]) -> int:
    """Every expected bizRequestId acknowledged; per room, the requests go through the events in order,
    and a request for the next event only ever follows the acknowledgement of the one before. Returns how
    many acknowledgements repeated one already given (a dispatcher killed between the receiver's answer
    and saving it sends that one again: at least once; receivers deduplicate on webhook-id)."""
    position = {
        event_id: (room, index) for room, ids in expected.items() for index, event_id in enumerate(ids)
    }
    assert receiver.acknowledged_ids() == set(position)
    by_room: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for request in receiver.requests:
        room, index = position[request.headers["webhook-id"]]
        by_room[room].append((index, request.acknowledged))
    for room, sequence in by_room.items():
        assert sequence[0][0] == 0, f"room {room} did not start with its first event"
        for (before, acknowledged), (index, _) in itertools.pairwise(sequence):
            if index != before:
                assert (index, acknowledged) == (before + 1, True), f"room {room} out of order: {sequence}"
    return len(receiver.acknowledged()) - len(receiver.acknowledged_ids())


async def create_app_with_callbacks(
    licence: LicenceServiceStub, name: str, *, room_status_url: str = "", record_url: str = ""
) -> App:
    created = await licence.CreateApp(
        licence_pb2.CreateAppRequest(
            name=name,
            settings=licence_pb2.AppSettings(
                room_status_callback_url=room_status_url, record_callback_url=record_url
            ),
        ),
        timeout=30,
    )
    return App(created.app.biz_name, created.app.app_id, created.app.workspace_id, created.private_key)


class RoomFacts:
    """Publishes room facts as the room manager does: keyed by room_id, each with a fresh ce_id."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._events = EventPublisher(broker, source="//parley/rooms")

    async def joined(self, biz_name: str, room_id: str, uid: str) -> str:
        event = room_events.ParticipantJoined(
            room_id=room_id,
            biz_name=biz_name,
            uid=uid,
            session_id=f"s-{uid}",
            joined_at=timestamp(datetime.now(UTC)),
        )
        return await self._events.publish(Topic.ROOM, event, key=room_id)

    async def created(self, biz_name: str, room_id: str, uid: str) -> str:
        event = room_events.RoomCreated(
            room_id=room_id, biz_name=biz_name, creator_uid=uid, created_at=timestamp(datetime.now(UTC))
        )
        return await self._events.publish(Topic.ROOM, event, key=room_id)


@contextlib.asynccontextmanager
async def room_facts_on(kafka: str) -> AsyncIterator[RoomFacts]:
    broker = create_broker(kafka, client_id="webhook-tests", tracer_provider=TracerProvider())
    await broker.connect()
    try:
        yield RoomFacts(broker)
    finally:
        await broker.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The webhook dispatcher's database, migrated, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}")
        await upgrade_to_head(made, "services.webhooks")
        yield made
        await made.dispose()
        return
    async with fresh_database_url("webhooks") as url:
        made = create_engine(url)
        await upgrade_to_head(made, "services.webhooks")
        yield made
        await made.dispose()
