"""Reading the ledger: the inputs of one app in a window, and its figures there."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.billing import rollups, store
from services.billing.figures import (
    ROLLUP_COLUMNS,
    Figures,
    Role,
    Span,
    StreamPiece,
    UsageInputs,
    billable_minutes,
    compute,
    merged,
    overlap,
    p2p_call_intervals,
)
from services.billing.periods import day_window, zone

# A tick covers one metering interval (10 s by default); no tick is longer than this, so a window's
# ticks are found by their start on the (biz_name, start_ms) index.
MAX_TICK_MS = 3_600_000


async def load_ticks(
    connection: AsyncConnection, biz_name: str, window: tuple[int, int]
) -> list[StreamPiece]:
    start, end = window
    rows = await connection.execute(
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
    return [StreamPiece.stored(*row) for row in rows]


async def load_spans(connection: AsyncConnection, biz_name: str, window: tuple[int, int]) -> UsageInputs:
    """The rooms, stays and sessions of the window (no ticks)."""
    start, end = window
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
    inputs = UsageInputs()
    by_kind = {"room": inputs.rooms, "participant": inputs.participants, "session": inputs.sessions}
    for kind, uid, room_id, start_ms, end_ms, engine in span_rows:
        by_kind[kind].append(Span(uid, room_id, start_ms, end_ms, engine))
    return inputs


async def scanned_figures(
    connection: AsyncConnection, biz_name: str, window: tuple[int, int], now_ms: int
) -> Figures:
    """The figures computed from every tick of the window (what the rollups must add up to)."""
    inputs = await load_spans(connection, biz_name, window)
    inputs.pieces.extend(await load_ticks(connection, biz_name, window))
    return compute(inputs, window, now_ms)


async def figures_in(
    connection: AsyncConnection, biz_name: str, window: tuple[int, int], now_ms: int
) -> Figures:
    """The figures of the window: those of ticks from the quarter-hour rollups, the rest from the spans."""
    if not rollups.aligned(window):
        return await scanned_figures(connection, biz_name, window, now_ms)
    inputs = await load_spans(connection, biz_name, window)
    # Without ticks, compute() counts call time in P2P rooms only, all of it as audio.
    figures = compute(inputs, window, now_ms)
    totals = await rollups.totals(connection, biz_name, window)
    for name, value in zip(ROLLUP_COLUMNS, totals, strict=True):
        setattr(figures, name, getattr(figures, name) + value)
    # An instant a uid is in a P2P call and receives a stream counts once, in the stream's tier.
    figures.call_audio_ms -= await _p2p_time_receiving(connection, biz_name, inputs, window, now_ms)
    figures.billable_minutes = billable_minutes(sum(figures.call_ms()))
    return figures


async def _p2p_time_receiving(
    connection: AsyncConnection, biz_name: str, inputs: UsageInputs, window: tuple[int, int], now_ms: int
) -> int:
    in_p2p: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for uid, interval in p2p_call_intervals(inputs.participants, window, now_ms):
        in_p2p[uid].append(interval)
    if not in_p2p:
        return 0
    reach = (
        await connection.execute(select(store.apps.c.max_tick_ms).where(store.apps.c.biz_name == biz_name))
    ).scalar_one_or_none() or 0
    calls = {uid: merged(intervals) for uid, intervals in in_p2p.items()}
    ranges = [
        (biz_name, uid, start - reach, end) for uid, intervals in calls.items() for start, end in intervals
    ]
    received: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for _, _, uid, piece in await rollups.stored_ticks(connection, ranges):
        if piece.role is Role.SUBSCRIPTION:
            received[uid].append((piece.start_ms, piece.end_ms))
    return sum(overlap(calls[uid], merged(intervals)) for uid, intervals in received.items())


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
        "max_tick_ms": 0,
    }


async def lock_apps(
    connection: AsyncConnection, biz_names: Iterable[str], now: datetime
) -> dict[str, Row[Any]]:
    """Make sure the apps exist and hold their rows until the transaction ends (sorted: no deadlocks)."""
    names = sorted(set(biz_names))
    if not names:
        return {}
    await connection.execute(
        store.upsert(connection, store.apps).on_conflict_do_nothing(index_elements=["biz_name"]),
        [new_app(name, now) for name in names],
    )
    rows = await connection.execute(
        select(store.apps)
        .where(store.apps.c.biz_name.in_(names))
        .order_by(store.apps.c.biz_name)
        .with_for_update()
    )
    return {row.biz_name: row for row in rows}
