"""The fact relay publishes what the room store staged, in order, keeping each fact's ce_id, and drops
nothing whatever the broker does (services/rooms/facts.py)."""

from __future__ import annotations

import asyncio

import pytest
from parley.rooms.v1 import events_pb2

from services.core.events import StagedEvent
from services.rooms.facts import FactRelay, stage
from services.rooms.store import InProcessRoomStore


class Broker:
    """An EventPublisher that refuses the next `refusals` publishes."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.published: list[StagedEvent] = []
        self.tries = 0

    async def publish_serialized(self, event: StagedEvent) -> None:
        self.tries += 1
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("broker unavailable")
        self.published.append(event)


def created(*room_ids: str) -> list[events_pb2.RoomCreated]:
    return [events_pb2.RoomCreated(room_id=room_id) for room_id in room_ids]


async def test_staged_facts_are_published_in_order_and_removed() -> None:
    store, broker = InProcessRoomStore(), Broker()
    staged = stage(created("r1", "r2", "r3"))
    await store.commit(staged)
    relay = FactRelay(store, broker)  # type: ignore[arg-type]
    assert await relay.publish_staged() == 3
    assert broker.published == [fact.event for fact in staged]
    assert await store.staged_facts(10) == []


async def test_a_refused_fact_stays_staged_with_its_id_and_what_went_before_is_not_sent_again() -> None:
    store, broker = InProcessRoomStore(), Broker()
    staged = stage(created("r1", "r2"))
    await store.commit(staged)
    relay = FactRelay(store, broker)  # type: ignore[arg-type]

    async def refuse_the_second(event: StagedEvent) -> None:
        if event.event_id == staged[1].event.event_id and broker.tries == 1:
            broker.tries += 1
            raise ConnectionError("broker unavailable")
        broker.tries += 1
        broker.published.append(event)

    broker.publish_serialized = refuse_the_second  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await relay.publish_staged()
    assert await store.staged_facts(10) == staged[1:]
    assert await relay.publish_staged() == 1
    assert broker.published == [fact.event for fact in staged]


async def test_the_running_relay_retries_a_refused_fact_until_the_broker_takes_it() -> None:
    store, broker = InProcessRoomStore(), Broker(refusals=7)
    relay = FactRelay(store, broker)  # type: ignore[arg-type]
    # Pauses grow from 0.2 s; the test only waits through the first few of them.
    await store.commit(stage(created("r1")))
    await relay.start()
    try:
        async with asyncio.timeout(5):
            while broker.tries < 3:
                await asyncio.sleep(0.05)
        assert await store.staged_facts(10) != []
        broker.refusals = 0
        relay.notify()
        async with asyncio.timeout(10):
            while not broker.published:
                await asyncio.sleep(0.05)
    finally:
        await relay.stop(1)
    [event] = broker.published
    assert events_pb2.RoomCreated.FromString(event.payload).room_id == "r1"
    assert await store.staged_facts(10) == []
