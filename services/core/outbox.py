"""The transactional outbox: an event is written in the same database transaction as the change it
reports, and published from there afterwards.

Publishing after commit alone loses the fact when the process dies between the two; publishing before
commit announces what may never be stored. With the outbox the event is as durable as the change: a
relay task publishes staged rows in order and deletes them once the broker has acknowledged them. After a
crash it publishes what was left, with the same `ce_id`, so consumers (idempotent on it) see each fact
once. The trace context of the request that staged an event is restored when it is published.
Replicas of one service sharing a database may both publish a row before either deletes it: a duplicate
with the same `ce_id`, which consumers drop like any redelivery.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf.message import Message
from opentelemetry import propagate
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, Row, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.events import EventPublisher, StagedEvent
from services.core.topics import Topic
from services.core.waiting import woken_or_timed_out

log = structlog.get_logger(__name__)

BATCH = 100


def outbox_table(metadata: MetaData, name: str) -> Table:
    """A service's outbox table, defined in its own metadata (and created by its own migration)."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(128), nullable=False),
        Column("event_key", String(256), nullable=False),
        Column("event_type", String(256), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("traceparent", String(128), nullable=False, default=""),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


class Outbox:
    def __init__(
        self, table: Table, engine: AsyncEngine, publisher: EventPublisher, *, poll_interval_s: float = 5.0
    ) -> None:
        """Whoever commits a staged event calls `notify` (every service's store does), so it is published
        at once; the poll, every `poll_interval_s`, only retries what the broker refused and finds rows
        left by a crash or by a replica. An empty poll costs ~0.5-1 ms of CPU (SQLAlchemy and aiosqlite's
        thread), which every idle service paid every second."""
        self._table = table
        self._engine = engine
        self._publisher = publisher
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def stage(self, connection: AsyncConnection, topic: Topic, event: Message, *, key: str) -> str:
        """Write `event` in the caller's transaction; it is published once that transaction commits."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        event_id = str(uuid.uuid4())
        await connection.execute(
            self._table.insert().values(
                event_id=event_id,
                topic=topic.value,
                event_key=key,
                event_type=event.DESCRIPTOR.full_name,
                payload=event.SerializeToString(),
                traceparent=carrier.get("traceparent", ""),
                created_at=datetime.now(UTC),
            )
        )
        return event_id

    async def stage_many(
        self, connection: AsyncConnection, topic: Topic, events: Sequence[tuple[Message, str]]
    ) -> None:
        """`stage` for many (event, key) pairs at once: one statement, in their order."""
        if not events:
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        now = datetime.now(UTC)
        await connection.execute(
            self._table.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "topic": topic.value,
                    "event_key": key,
                    "event_type": event.DESCRIPTOR.full_name,
                    "payload": event.SerializeToString(),
                    "traceparent": carrier.get("traceparent", ""),
                    "created_at": now,
                }
                for event, key in events
            ],
        )

    def notify(self) -> None:
        """Something was committed: publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        # What a crash left is published at once, not at the first poll.
        self._wake.set()
        self._task = asyncio.create_task(self._relay(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what is staged, then stop; what cannot be published now waits in the table."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            await self.publish_pending()
        except Exception:
            log.warning("outbox_left_pending", exc_info=True)

    async def publish_pending(self) -> int:
        """Publish every staged event in order; return how many were published. A batch of rows is
        published together and deleted in one statement once the broker has acknowledged all of it."""
        published = 0
        while True:
            async with self._engine.connect() as connection:
                rows = (
                    await connection.execute(select(self._table).order_by(self._table.c.id).limit(BATCH))
                ).all()
            if not rows:
                return published
            await self._publisher.publish_many([(_staged(row), _carrier(row)) for row in rows])
            async with self._engine.begin() as connection:
                await connection.execute(
                    delete(self._table).where(self._table.c.id.in_([r.id for r in rows]))
                )
            published += len(rows)

    async def _relay(self) -> None:
        while True:
            await woken_or_timed_out(self._wake, self._poll_interval_s)
            self._wake.clear()
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The broker or the database is away; the rows wait and the next round tries again.
                log.warning("outbox_publish_failed", exc_info=True)


def _staged(row: Row[Any]) -> StagedEvent:
    return StagedEvent(
        event_id=row.event_id,
        topic=Topic(row.topic),
        key=row.event_key,
        event_type=row.event_type,
        payload=row.payload,
        # SQLite hands back naive datetimes; they were written in UTC.
        time=row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
    )


def _carrier(row: Row[Any]) -> dict[str, str]:
    """The trace context of the request that staged the event."""
    return {"traceparent": row.traceparent} if row.traceparent else {}
