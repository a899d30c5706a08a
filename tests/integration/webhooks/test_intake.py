"""The intake's filter on both databases: a room fact of an app that set no callback URL, and that no
CloudEvents endpoint subscribed to, is dropped without a transaction; one that has somewhere to go (a URL
set by a licence fact read just before it, in the same batch or an earlier one; an endpoint subscribed a
moment before) is written as before."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from parley.licence.v1 import events_pb2 as licence_events
from parley.licence.v1 import licence_pb2
from parley.rooms.v1 import events_pb2 as room_events
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.events import Envelope, RawEvent
from services.core.timestamps import timestamp
from services.core.topics import Topic
from services.webhooks.apps import AppDirectory
from services.webhooks.intake import Intake
from services.webhooks.policy import RetryPolicy
from services.webhooks.store import WebhookStore, deliveries
from tests.webhook_deliveries import idle_dispatcher, offline_store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
JOINED = room_events.ParticipantJoined.DESCRIPTOR.full_name
STATUS_URL = "https://receiver.example/room-status"


class CountingStore(WebhookStore):
    """The real store, counting the transactions the intake opens."""

    transactions = 0

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        self.transactions += 1
        async with super().begin() as connection:
            yield connection


class Licence:
    """GetApp as the licence service answers it, for the apps in `apps`."""

    def __init__(self) -> None:
        self.apps: dict[str, licence_pb2.App] = {}

    async def GetApp(self, request: licence_pb2.GetAppRequest, **call_options: Any) -> licence_pb2.App:
        app = self.apps.get(request.biz_name)
        if app is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "no such app"
            )
        return app


@pytest.fixture
async def intake(engine: AsyncEngine) -> AsyncIterator[tuple[Intake, CountingStore, Licence]]:
    store = offline_store(engine, store_class=CountingStore)
    # No attempt is made: what the intake wrote stays in the schedule for the test to read.
    dispatcher, sender = idle_dispatcher(store)
    licence = Licence()
    apps = AppDirectory(licence, ttl_s=30)  # type: ignore[arg-type]
    yield Intake(store, apps, RetryPolicy([0]), dispatcher), store, licence
    await sender.close()


ids = itertools.count(1)


def fact(topic: Topic, message: Any, key: str) -> RawEvent:
    envelope = Envelope(
        id=f"ev-{next(ids)}",
        type=message.DESCRIPTOR.full_name,
        source="//tests",
        time="2026-12-06T12:00:00Z",
        topic=topic.value,
        key=key,
    )
    return RawEvent(message.SerializeToString(), envelope)


def joined(biz_name: str, room_id: str, uid: str) -> RawEvent:
    event = room_events.ParticipantJoined(
        room_id=room_id, biz_name=biz_name, uid=uid, joined_at=timestamp(NOW)
    )
    return fact(Topic.ROOM, event, room_id)


def app(biz_name: str, *, room_status_url: str = "") -> licence_pb2.App:
    return licence_pb2.App(
        biz_name=biz_name,
        app_id=f"app-{biz_name}",
        workspace_id="ws",
        settings=licence_pb2.AppSettings(room_status_callback_url=room_status_url),
    )


def app_changed(biz_name: str, *, room_status_url: str) -> RawEvent:
    event = licence_events.AppChanged(app=app(biz_name, room_status_url=room_status_url))
    return fact(Topic.LICENCE, event, biz_name)


async def written_for(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(deliveries.c.event_id, deliveries.c.endpoint_id).order_by(deliveries.c.id)
        )
        return [(row.event_id, row.endpoint_id) for row in rows]


async def test_room_facts_of_an_app_without_callbacks_cost_no_transaction(
    intake: tuple[Intake, CountingStore, Licence], engine: AsyncEngine
) -> None:
    handler, store, licence = intake
    licence.apps["quiet"] = app("quiet")
    await handler.on_events([joined("quiet", "r1", "u1"), joined("quiet", "r1", "u2")])
    await handler.on_events([joined("nobody", "r2", "u1")])
    assert store.transactions == 0
    assert await written_for(engine) == []


async def test_a_url_set_just_before_a_fact_gets_its_callback(
    intake: tuple[Intake, CountingStore, Licence], engine: AsyncEngine
) -> None:
    handler, store, licence = intake
    licence.apps["b1"] = app("b1")
    await handler.on_events([joined("b1", "r1", "u1")])  # the app is now known without a URL
    assert store.transactions == 0
    # The URL is set; the licence fact saying so comes in the same batch as the next join, before it.
    same_batch = joined("b1", "r1", "u2")
    await handler.on_events([app_changed("b1", room_status_url=STATUS_URL), same_batch])
    next_batch = joined("b1", "r1", "u3")
    await handler.on_events([next_batch])
    assert await written_for(engine) == [
        (same_batch.envelope.id, "b1.room_status"),
        (next_batch.envelope.id, "b1.room_status"),
    ]
    # The URL is removed again: the room's facts are dropped again.
    await handler.on_events([app_changed("b1", room_status_url="")])
    before = store.transactions
    await handler.on_events([joined("b1", "r1", "u4")])
    assert store.transactions == before
    assert len(await written_for(engine)) == 2


async def test_an_endpoint_subscribed_a_moment_before_a_fact_gets_it(
    intake: tuple[Intake, CountingStore, Licence], engine: AsyncEngine
) -> None:
    handler, store, licence = intake
    licence.apps["b2"] = app("b2")
    await handler.on_events([joined("b2", "r1", "u1")])  # no subscriber yet: types looked up, none
    assert store.transactions == 0
    endpoint = await store.create_endpoint("b2", "https://receiver.example/ce", [JOINED], NOW)
    # What the operator API's servicer calls after it created the endpoint (services/webhooks/app.py).
    handler.endpoints_changed()
    subscribed = joined("b2", "r1", "u2")
    await handler.on_events([subscribed])
    assert await written_for(engine) == [(subscribed.envelope.id, endpoint.endpoint_id)]
