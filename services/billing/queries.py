"""Reading the ledger: the inputs of one app in a window, and its figures there."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert

from services.billing import store
from services.billing.figures import Figures, Role, Span, StreamPiece, Tier, UsageInputs, compute
from services.billing.periods import day_window, zone

# A tick covers one metering interval (10 s by default); no tick is longer than this, so a window's
# ticks are found by their start on the (biz_name, start_ms) index.
MAX_TICK_MS = 3_600_000


def upsert(connection: AsyncConnection, table: Any) -> Any:
    """INSERT with ON CONFLICT for the connection's dialect (both spell it the same way)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement: Insert = dialect.insert(table)
    return statement


async def load_inputs(connection: AsyncConnection, biz_name: str, window: tuple[int, int]) -> UsageInputs:
    start, end = window
    tick_rows = await connection.execute(
        select(
            store.ticks.c.uid,
            store.ticks.c.stream_id,
            store.ticks.c.role,
            store.ticks.c.tier,
            store.ticks.c.start_ms,
            store.ticks.c.end_ms,
        ).where(
            store.ticks.c.biz_name == biz_name,
            store.ticks.c.start_ms >= start - MAX_TICK_MS,
            store.ticks.c.start_ms < end,
            store.ticks.c.end_ms > start,
        )
    )
    pieces = [
        StreamPiece(uid, stream_id, Role(role), Tier(tier), start_ms, end_ms)
        for uid, stream_id, role, tier, start_ms, end_ms in tick_rows
    ]
    span_rows = await connection.execute(
        select(
            store.spans.c.kind,
            store.spans.c.uid,
            store.spans.c.room_id,
            store.spans.c.start_ms,
            store.spans.c.end_ms,
            store.spans.c.engine,
        ).where(
            store.spans.c.biz_name == biz_name,
            store.spans.c.start_ms.is_not(None),
            store.spans.c.start_ms < end,
            or_(store.spans.c.end_ms.is_(None), store.spans.c.end_ms > start),
        )
    )
    inputs = UsageInputs(pieces=pieces)
    by_kind = {"room": inputs.rooms, "participant": inputs.participants, "session": inputs.sessions}
    for kind, uid, room_id, start_ms, end_ms, engine in span_rows:
        by_kind[kind].append(Span(uid, room_id, start_ms, end_ms, engine))
    return inputs


async def figures_in(
    connection: AsyncConnection, biz_name: str, window: tuple[int, int], now_ms: int
) -> Figures:
    return compute(await load_inputs(connection, biz_name, window), window, now_ms)


async def day_figures(connection: AsyncConnection, app: Row[Any], day: date, now_ms: int) -> Figures:
    return await figures_in(connection, app.biz_name, day_window(day, zone(app.time_zone)), now_ms)


async def frozen_and_adjusted(connection: AsyncConnection, biz_name: str, day: date) -> Figures:
    """What a closed day's figures are on record as: frozen at close, plus every adjustment since."""
    total = Figures()
    frozen = (
        await connection.execute(
            select(store.days).where(and_(store.days.c.biz_name == biz_name, store.days.c.day == day))
        )
    ).first()
    if frozen is not None:
        total = figures_of_row(frozen)
    for row in await connection.execute(
        select(store.adjustments).where(
            store.adjustments.c.biz_name == biz_name, store.adjustments.c.day == day
        )
    ):
        total = total.plus(figures_of_row(row))
    return total


def figures_of_row(row: Row[Any]) -> Figures:
    mapping = row._mapping
    return Figures(**{name: int(mapping[name]) for name in Figures.names()})


def new_app(biz_name: str, now: datetime) -> dict[str, Any]:
    """An app billing has not heard of: post-paid, days in UTC, rated at 0 until it has a price plan."""
    return {
        "biz_name": biz_name,
        "time_zone": "UTC",
        "currency": "USD",
        "price_audio": 0,
        "price_360p": 0,
        "price_540p": 0,
        "price_720p": 0,
        "price_1080p": 0,
        "mode": "postpaid",
        "unit": "money",
        "in_arrears": False,
        "first_day": None,
        "closed_through": None,
        "prepaid_since": None,
        "updated_at": now,
    }


async def lock_apps(
    connection: AsyncConnection, biz_names: Iterable[str], now: datetime
) -> dict[str, Row[Any]]:
    """Make sure the apps exist and hold their rows until the transaction ends (sorted: no deadlocks)."""
    names = sorted(set(biz_names))
    if not names:
        return {}
    await connection.execute(
        upsert(connection, store.apps).on_conflict_do_nothing(index_elements=["biz_name"]),
        [new_app(name, now) for name in names],
    )
    rows = await connection.execute(
        select(store.apps)
        .where(store.apps.c.biz_name.in_(names))
        .order_by(store.apps.c.biz_name)
        .with_for_update()
    )
    return {row.biz_name: row for row in rows}
