"""The fact relay publishes what the room store staged, in order, keeping each fact's ce_id, and drops
nothing whatever the broker does (services/rooms/facts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from parley.rooms.v1 import events_pb2

from services.core.events import StagedEvent
from services.rooms.facts import FactRelay, stage
from services.rooms.store import InProcessRoomStore


class Broker:
    """An EventPublisher that refuses the next `refusals` batches: the events of a refused batch before the
    one it fails on have gone out, as a producer's may have."""

    def __init__(self, refusals: int = 0, fail_at: int = 0) -> None:
        self.refusals = refusals
        self.fail_at = fail_at
        self.published: list[StagedEvent] = []
        self.tries = 0

    async def publish_many(self, events: Sequence[tuple[StagedEvent, Mapping[str, str]]]) -> None:
        self.tries += 1
        if self.refusals:
            self.refusals -= 1
            self.published.extend(event for event, _ in events[: self.fail_at])
            raise ConnectionError("broker unavailable")
        self.published.extend(event for event, _ in events)


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


async def test_a_refused_batch_stays_staged_whole_and_comes_again_with_its_ids() -> None:
    store, broker = InProcessRoomStore(), Broker(refusals=1, fail_at=1)
    staged = stage(created("r1", "r2"))
    await store.commit(staged)
    relay = FactRelay(store, broker)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await relay.publish_staged()
    assert await store.staged_facts(10) == staged
    assert await relay.publish_staged() == 2
    # r1 went out before the refusal and again with the batch: a repeat of its ce_id, in order after it.
    assert broker.published == [staged[0].event, staged[0].event, staged[1].event]
    assert await store.staged_facts(10) == []


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
