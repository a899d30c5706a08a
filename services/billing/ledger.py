"""The usage ledger. Every row is written once per event id, so an event delivered twice (Kafka is
at-least-once) is counted once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

room_usage = Table(
    "billing_room_usage",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("room_id", String(64), nullable=False, index=True),
    Column("biz_name", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class RoomCreation:
    event_id: str
    room_id: str
    biz_name: str
    created_at: datetime


class UsageLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_room_created(self, creation: RoomCreation) -> bool:
        """Record a room creation; False when this event id was already recorded."""
        async with self._engine.begin() as connection:
            known = await connection.scalar(
                select(room_usage.c.event_id).where(room_usage.c.event_id == creation.event_id)
            )
            if known is not None:
                return False
            await connection.execute(
                room_usage.insert().values(
                    event_id=creation.event_id,
                    room_id=creation.room_id,
                    biz_name=creation.biz_name,
                    created_at=creation.created_at,
                )
            )
            return True

    async def count_rooms(self, biz_name: str, start: datetime, end: datetime) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(room_usage)
                .where(
                    room_usage.c.biz_name == biz_name,
                    room_usage.c.created_at >= start,
                    room_usage.c.created_at < end,
                )
            )
        return int(count or 0)
