"""Quarter-hour rollups of the figures that come from ticks, kept in the transaction that writes the ticks.

Call time by tier and published / subscribed stream time are measures over time: the figure of a window
is the sum of the figures of any pieces it is cut into. So the ledger keeps, per app and quarter hour
(`billing_rollups`; every time zone's days begin on a quarter hour), what those figures are there, and
the statistics add rows instead of reading ticks (services/billing/queries.py).

A batch changes a quarter hour only where its new ticks lie: for each uid, the figures of the time its
new ticks cover are computed twice, from the ticks already stored there (read on the
(biz_name, uid, start_ms) index) and from those plus the new ones; the difference is added to the
rollups. Ticks already stored (redeliveries) are not new. A tick overlaps a new one only if it starts at
most the app's longest tick earlier, which the app's row keeps (`max_tick_ms`), so the read is bounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.billing import store
from services.billing.figures import ROLLUP_COLUMNS, Role, StreamPiece, Tier, merged, tiered_call_ms

BUCKET_MS = 15 * 60_000
# Ranges read in one statement (SQLite's expression depth and both drivers' parameter limits).
_RANGES_PER_READ = 200


def aligned(window: tuple[int, int]) -> bool:
    return window[0] % BUCKET_MS == 0 and window[1] % BUCKET_MS == 0


def _split(intervals: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The intervals cut at quarter-hour boundaries."""
    for start, end in intervals:
        while start < end:
            boundary = (start // BUCKET_MS + 1) * BUCKET_MS
            yield start, min(end, boundary)
            start = boundary


def _clipped(pieces: Iterable[StreamPiece], window: tuple[int, int]) -> list[tuple[int, int, Tier]]:
    low, high = window
    return [
        (max(p.start_ms, low), min(p.end_ms, high), p.tier)
        for p in pieces
        if p.start_ms < high and p.end_ms > low
    ]


def _by_bucket(pieces: Iterable[StreamPiece]) -> dict[int, list[StreamPiece]]:
    """The pieces under each quarter hour (by its number) they touch."""
    out: dict[int, list[StreamPiece]] = defaultdict(list)
    for piece in pieces:
        for bucket in range(piece.start_ms // BUCKET_MS, (piece.end_ms - 1) // BUCKET_MS + 1):
            out[bucket].append(piece)
    return out


def piece_deltas(stored: Sequence[StreamPiece], new: Sequence[StreamPiece]) -> dict[int, list[int]]:
    """Per quarter hour (its start), what `new` ticks of one uid add to the rollup's columns (in
    ROLLUP_COLUMNS order) where `stored` ticks of that uid (every one that overlaps a new one) already are.
    Only the time the new ticks cover is computed, before and after: elsewhere nothing changes."""
    out: dict[int, list[int]] = defaultdict(lambda: [0] * len(ROLLUP_COLUMNS))

    def changes(
        old: Sequence[StreamPiece], added: Sequence[StreamPiece]
    ) -> Iterator[tuple[int, list[tuple[int, int, Tier]], list[tuple[int, int, Tier]]]]:
        """Per piece of the time `added` covers (cut at quarter hours): its bucket, the pieces there
        before and after."""
        old_by_bucket, added_by_bucket = _by_bucket(old), _by_bucket(added)
        for piece in _split(merged((p.start_ms, p.end_ms) for p in added)):
            bucket = piece[0] // BUCKET_MS
            before = _clipped(old_by_bucket.get(bucket, []), piece)
            yield bucket * BUCKET_MS, before, before + _clipped(added_by_bucket[bucket], piece)

    subscribed_old = [p for p in stored if p.role is Role.SUBSCRIPTION]
    subscribed_new = [p for p in new if p.role is Role.SUBSCRIPTION]
    for start, before, after in changes(subscribed_old, subscribed_new):
        row = out[start]
        for tier, (was, now) in enumerate(
            zip(tiered_call_ms({"": before}), tiered_call_ms({"": after}), strict=True)
        ):
            row[tier] += now - was
    streams: dict[tuple[Role, str], tuple[list[StreamPiece], list[StreamPiece]]] = defaultdict(
        lambda: ([], [])
    )
    for p in stored:
        streams[(p.role, p.stream_id)][0].append(p)
    for p in new:
        streams[(p.role, p.stream_id)][1].append(p)
    for (role, _), (old, added) in streams.items():
        column = ROLLUP_COLUMNS.index(
            "published_stream_ms" if role is Role.PUBLICATION else "subscribed_stream_ms"
        )
        for start, before, after in changes(old, added):
            out[start][column] += _covered(after) - _covered(before)
    return out


def _covered(pieces: list[tuple[int, int, Tier]]) -> int:
    return sum(end - start for start, end in merged((s, e) for s, e, _ in pieces))


async def stored_ticks(
    connection: AsyncConnection, ranges: Sequence[tuple[str, str, int, int]]
) -> list[tuple[str, str, str, StreamPiece]]:
    """(tick_id, biz_name, uid, piece) of the stored ticks of each (biz_name, uid) starting in [low, high)."""
    out: list[tuple[str, str, str, StreamPiece]] = []
    for first in range(0, len(ranges), _RANGES_PER_READ):
        chunk = ranges[first : first + _RANGES_PER_READ]
        marks = store.driver_marks(connection.dialect.paramstyle, len(chunk) * 4)
        where = " OR ".join(
            f"(biz_name = {marks[i]} AND uid = {marks[i + 1]} AND start_ms >= {marks[i + 2]} "
            f"AND start_ms < {marks[i + 3]})"
            for i in range(0, len(marks), 4)
        )
        rows = await connection.exec_driver_sql(
            "SELECT tick_id, biz_name, uid, stream_id, role, tier, start_ms, end_ms "
            f"FROM {store.ticks.name} WHERE {where}",
            tuple(value for item in chunk for value in item),
        )
        for row in rows:
            tick_id, biz_name, uid, *columns = tuple(row)
            out.append((tick_id, biz_name, uid, StreamPiece.stored(uid, *columns)))
    return out


def _ranges(
    pieces: Iterable[tuple[str, str, StreamPiece]], reach: dict[str, int]
) -> list[tuple[str, str, int, int]]:
    """Per (biz_name, uid), the spans of start times where a stored tick may overlap one of `pieces`."""
    by_uid: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for biz_name, uid, piece in pieces:
        by_uid[(biz_name, uid)].append((piece.start_ms - reach[biz_name], piece.end_ms))
    return [(biz, uid, low, high) for (biz, uid), spans in by_uid.items() for low, high in merged(spans)]


async def add_ticks(
    connection: AsyncConnection, apps: dict[str, Row[Any]], ticks: Iterable[dict[str, Any]]
) -> None:
    """Add to the rollups what the ticks not stored yet change; call before inserting them."""
    batch = {
        tick["tick_id"]: (
            tick["biz_name"],
            tick["uid"],
            StreamPiece.stored(
                tick["uid"], tick["stream_id"], tick["role"], tick["tier"], tick["start_ms"], tick["end_ms"]
            ),
        )
        for tick in ticks
    }
    reach = {name: app.max_tick_ms for name, app in apps.items()}
    stored: dict[tuple[str, str], list[StreamPiece]] = defaultdict(list)
    already = set()
    for tick_id, biz_name, uid, piece in await stored_ticks(connection, _ranges(batch.values(), reach)):
        already.add(tick_id)
        stored[(biz_name, uid)].append(piece)
    new: dict[tuple[str, str], list[StreamPiece]] = defaultdict(list)
    longest: dict[str, int] = {}
    for tick_id, (biz_name, uid, piece) in batch.items():
        if tick_id not in already:
            new[(biz_name, uid)].append(piece)
            longest[biz_name] = max(longest.get(biz_name, 0), piece.end_ms - piece.start_ms)
    rows: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * len(ROLLUP_COLUMNS))
    for (biz_name, uid), pieces in new.items():
        for bucket, delta in piece_deltas(stored[(biz_name, uid)], pieces).items():
            row = rows[(biz_name, bucket)]
            for index, value in enumerate(delta):
                row[index] += value
    await write(connection, rows)
    for biz_name, length in longest.items():
        if length > apps[biz_name].max_tick_ms:
            await connection.execute(
                update(store.apps).where(store.apps.c.biz_name == biz_name).values(max_tick_ms=length)
            )


async def write(connection: AsyncConnection, rows: dict[tuple[str, int], list[int]]) -> None:
    """Add `rows` ((biz_name, bucket) → column deltas) to the rollups."""
    changed = [
        {"biz_name": biz_name, "bucket_ms": bucket, **dict(zip(ROLLUP_COLUMNS, values, strict=True))}
        for (biz_name, bucket), values in rows.items()
        if any(values)
    ]
    if not changed:
        return
    statement = store.upsert(connection, store.rollups)
    statement = statement.on_conflict_do_update(
        index_elements=["biz_name", "bucket_ms"],
        set_={name: store.rollups.c[name] + statement.excluded[name] for name in ROLLUP_COLUMNS},
    )
    await connection.execute(statement, changed)


async def totals(connection: AsyncConnection, biz_name: str, window: tuple[int, int]) -> list[int]:
    """The rollups' columns summed over the quarter hours of a window that begins and ends on them."""
    row = (
        await connection.execute(
            select(*(func.coalesce(func.sum(store.rollups.c[name]), 0) for name in ROLLUP_COLUMNS)).where(
                store.rollups.c.biz_name == biz_name,
                store.rollups.c.bucket_ms >= window[0],
                store.rollups.c.bucket_ms < window[1],
            )
        )
    ).one()
    return [int(value) for value in row]
