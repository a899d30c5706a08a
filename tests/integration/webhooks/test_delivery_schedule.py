"""The delivery schedule on both databases (SQLite and PostgreSQL): the migrations make the tables the store
declares; one delivery per (endpoint, event); only the oldest pending delivery of each (endpoint, room) is
claimed; a lease keeps other replicas off until it runs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.webhooks.policy import Outcome
from services.webhooks.pruning import Pruner
from services.webhooks.store import (
    AttemptRecord,
    Claim,
    NewDelivery,
    WebhookStore,
    attempts,
    deliveries,
    metadata,
)
from tests.integration.schema_drift import schema_drift
from tests.webhook_deliveries import joined_delivery, offline_store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def delivery(event_id: str, room: str, endpoint_id: str = "ep_1") -> NewDelivery:
    return joined_delivery(event_id, room, NOW, endpoint_id=endpoint_id, biz_name="biz1")


async def enqueue(store: WebhookStore, *deliveries: NewDelivery) -> list[str | None]:
    async with store.begin() as connection:
        return [await store.enqueue(connection, d, first_attempt_at=NOW, now=NOW) for d in deliveries]


def delivered(claim: Claim) -> AttemptRecord:
    return AttemptRecord(claim, 1, NOW, 5, 200, Outcome.DELIVERED, "", None)


async def test_the_migrations_make_the_tables_the_store_declares(engine: AsyncEngine) -> None:
    assert await schema_drift(engine, metadata, "webhook_") == []


async def test_each_room_goes_in_order_and_rooms_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    store = offline_store(engine)
    ids = await enqueue(
        store,
        delivery("a1", "A"),
        delivery("a2", "A"),
        delivery("b1", "B"),
        delivery("a3", "A"),
        delivery("a1x", "A", "ep_2"),
    )
    assert None not in ids
    assert await enqueue(store, delivery("a1", "A")) == [None]  # the same event again: nothing new

    first = await store.claim_due(NOW, 10, LEASE)
    assert sorted(c.event_id for c in first) == ["a1", "a1x", "b1"]
    # Leased: nobody claims them again, and nothing behind them is due.
    assert await store.claim_due(NOW, 10, LEASE) == []
    other_replica = offline_store(engine)
    assert await other_replica.claim_due(NOW, 10, LEASE) == []

    a1 = next(c for c in first if c.event_id == "a1")
    await store.record([delivered(a1)])
    # The end of a1 makes a2 the head of room A: found without a scan, and leased once only.
    (head,) = await store.claim_heads([("ep_1", "A"), ("ep_1", "B"), ("ep_2", "A")], NOW, LEASE)
    assert head.event_id == "a2"
    assert await store.claim_heads([("ep_1", "A")], NOW, LEASE) == []
    assert await store.claim_due(NOW, 10, LEASE) == []

    # A replica that died holding leases: once they run out, another one claims those deliveries.
    later = NOW + LEASE + timedelta(seconds=1)
    assert sorted(c.event_id for c in await other_replica.claim_due(later, 10, LEASE)) == ["a1x", "a2", "b1"]


async def test_a_batch_is_written_in_its_order_and_only_its_new_deliveries_come_back(
    engine: AsyncEngine,
) -> None:
    store = offline_store(engine)
    await enqueue(store, delivery("e0", "A"))
    # More rows than one multi-row INSERT holds, one of them known already and one repeated in the batch.
    batch = [delivery(f"e{index}", "A") for index in range(1500)] + [delivery("e7", "A")]
    async with store.begin() as connection:
        written = await store.enqueue_many(connection, batch, first_attempt_at=NOW, now=NOW)
    assert len(written) == 1499 and {row.ordering_key for row in written} == {"A"}
    async with engine.connect() as connection:
        order = list(await connection.scalars(select(deliveries.c.event_id).order_by(deliveries.c.id)))
    assert order == [f"e{index}" for index in range(1500)]


async def test_pruning_deletes_what_was_delivered_before_the_retention_and_keeps_dead_letters(
    engine: AsyncEngine,
) -> None:
    store = offline_store(engine)
    await enqueue(
        store, delivery("old", "P"), delivery("new", "Q"), delivery("dead", "R"), delivery("due", "S")
    )
    old, new, dead, _ = await store.claim_due(NOW, 10, LEASE)
    await store.record(
        [
            delivered(old),
            AttemptRecord(new, 1, NOW + timedelta(days=2), 5, 200, Outcome.DELIVERED, "", None),
            AttemptRecord(dead, 1, NOW, 5, 500, Outcome.DEAD_LETTERED, "HTTP 500", None),
        ]
    )
    pruner = Pruner(store, retention_s=timedelta(days=30).total_seconds())
    assert await pruner.prune(NOW + timedelta(days=31)) == 1
    async with engine.connect() as connection:
        left = set(await connection.scalars(select(deliveries.c.event_id)))
        left_attempts = set(await connection.scalars(select(attempts.c.delivery_id)))
    assert left == {"new", "dead", "due"}
    assert left_attempts == {new.delivery_id, dead.delivery_id}


async def test_a_retry_not_yet_due_holds_its_room_back(engine: AsyncEngine) -> None:
    store = offline_store(engine)
    await enqueue(store, delivery("c1", "C"), delivery("c2", "C"))
    (c1,) = await store.claim_due(NOW, 10, LEASE)
    retry_at = NOW + timedelta(minutes=5)
    await store.record([AttemptRecord(c1, 1, NOW, 5, 500, Outcome.RETRYING, "HTTP 500", retry_at)])
    assert await store.claim_due(NOW + timedelta(minutes=1), 10, LEASE) == []
    (again,) = await store.claim_due(retry_at, 10, LEASE)
    assert (again.event_id, again.attempts) == ("c1", 1)
    await store.record([AttemptRecord(again, 2, retry_at, 5, 0, Outcome.DEAD_LETTERED, "timed out", None)])
    # Dead-lettered: the room moves on.
    assert [c.event_id for c in await store.claim_due(retry_at, 10, LEASE)] == ["c2"]
    assert await store.redeliver("biz1", None, retry_at) == 1


async def test_a_delivery_is_not_claimed_beside_a_leased_one_of_its_queue(engine: AsyncEngine) -> None:
    """A dispatcher holds a queue's deliveries leased in memory; a dead letter of that queue redelivered
    meanwhile (older than them) waits until the queue is free rather than going beside them."""
    store = offline_store(engine)
    await enqueue(store, delivery("h1", "H"), delivery("h2", "H"))
    (h1,) = await store.claim_due(NOW, 10, LEASE)
    await store.record([AttemptRecord(h1, 1, NOW, 5, 500, Outcome.DEAD_LETTERED, "HTTP 500", None)])
    (h2,) = await store.claim_heads([("ep_1", "H")], NOW, LEASE)
    assert await store.redeliver("biz1", None, NOW) == 1
    async with store.begin() as connection:
        assert await store.pending_counts(connection, [("ep_1", "H"), ("ep_2", "H")]) == {("ep_1", "H"): 2}
    assert await store.claim_due(NOW, 10, LEASE) == []
    assert await store.claim_heads([("ep_1", "H")], NOW, LEASE) == []
    await store.record([delivered(h2)])
    assert [c.event_id for c in await store.claim_due(NOW, 10, LEASE)] == ["h1"]
