"""The usage ledger: writes what the consumer read, exactly once, and closes days.

`apply` writes a batch's rows and the offsets that follow them in one transaction, so after a crash the
database holds either both or neither, and the consumer resumes from the stored offsets. Rows are keyed
by their inputs' stable ids (services/billing/inputs.py), so a fact delivered twice, or re-read after a
rebalance, changes nothing the second time.

A local day is closed once `lateness` has passed after its end: its figures are frozen in `billing_days`
for statements. Usage that arrives for a closed day is kept like any other and also posted as an
adjustment (what the day's figures are now minus what is on record), never dropped in silence.

Writers of one app serialise on its `billing_apps` row (a row lock on PostgreSQL; SQLite transactions
take the write lock at BEGIN), so a day cannot close between a batch reading `closed_through` and its
commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, case, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.billing import store
from services.billing.accounts import Rating
from services.billing.inputs import TICK_COLUMNS, Batch
from services.billing.periods import LOOKBACK_DAYS, day_of, day_window, days, to_ms, zone
from services.billing.queries import day_figures, frozen_and_adjusted, lock_apps, upsert

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class UsageLedger:
    def __init__(
        self, engine: AsyncEngine, rating: Rating, *, lateness: timedelta, clock: Clock = utc_now
    ) -> None:
        self._engine = engine
        self._rating = rating
        self._lateness_ms = int(lateness.total_seconds() * 1000)
        self._clock = clock

    async def stored_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = list(partitions)
        if not wanted:
            return {}
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(store.offsets).where(
                    tuple_(store.offsets.c.topic, store.offsets.c.partition).in_(wanted)
                )
            )
            return {(row.topic, row.partition): row.next_offset for row in rows}

    async def apply(self, batch: Batch) -> None:
        """Write the batch's rows and offsets in one transaction."""
        now = self._clock()
        async with self._engine.begin() as connection:
            apps = await lock_apps(connection, batch.biz_names(), now)
            if batch.ticks:
                await connection.exec_driver_sql(
                    _insert_ticks(connection.dialect.paramstyle),
                    [tuple(row[column] for column in TICK_COLUMNS) for row in batch.ticks.values()],
                )
            if batch.spans:
                statement = upsert(connection, store.spans)
                spans = store.spans.c
                statement = statement.on_conflict_do_update(
                    index_elements=["span_id"],
                    set_={
                        "start_ms": func.coalesce(spans.start_ms, statement.excluded.start_ms),
                        "end_ms": func.coalesce(statement.excluded.end_ms, spans.end_ms),
                        "uid": case((spans.uid == "", statement.excluded.uid), else_=spans.uid),
                    },
                )
                await connection.execute(statement, [asdict(fact) for fact in batch.spans.values()])
            await self._note_days(connection, apps, batch, now)
            if batch.offsets:
                statement = upsert(connection, store.offsets)
                stored = store.offsets.c.next_offset
                # Never backwards: a batch read before a rebalance may commit after the new owner's.
                statement = statement.on_conflict_do_update(
                    index_elements=["topic", "partition"],
                    set_={
                        "next_offset": case(
                            (statement.excluded.next_offset > stored, statement.excluded.next_offset),
                            else_=stored,
                        )
                    },
                )
                await connection.execute(
                    statement,
                    [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in batch.offsets.items()],
                )

    async def _note_days(
        self, connection: AsyncConnection, apps: dict[str, Row[Any]], batch: Batch, now: datetime
    ) -> None:
        """Move each app's first day back to its earliest usage, and post adjustments for closed days."""
        now_ms = to_ms(now)
        earliest_ms: dict[str, int] = {}
        # Where each app's closed days end: usage starting before it touches a closed day (integer
        # compares per input; days are worked out only for late usage).
        closed_end = {
            name: day_window(app.closed_through, zone(app.time_zone))[1]
            for name, app in apps.items()
            if app.closed_through is not None
        }
        late: set[tuple[str, date]] = set()

        def note(biz_name: str, start_ms: int, last_ms: int | None, whole_rest: bool) -> None:
            if start_ms < earliest_ms.get(biz_name, start_ms + 1):
                earliest_ms[biz_name] = start_ms
            if start_ms >= closed_end.get(biz_name, start_ms):
                return
            app = apps[biz_name]
            tz, closed = zone(app.time_zone), app.closed_through
            # A span's end (or its being still open) changes every closed day after its start; a tick
            # only the days it covers.
            last = closed if whole_rest or last_ms is None else min(day_of(last_ms, tz), closed)
            first = max(day_of(start_ms, tz), closed - timedelta(days=LOOKBACK_DAYS))
            late.update((biz_name, day) for day in days(first, last))

        for tick in batch.ticks.values():
            note(tick["biz_name"], tick["start_ms"], tick["end_ms"] - 1, whole_rest=False)
        for fact in batch.spans.values():
            known = fact.start_ms if fact.start_ms is not None else fact.end_ms
            if known is not None:
                note(fact.biz_name, known, fact.end_ms, whole_rest=True)

        earliest = {name: day_of(ms, zone(apps[name].time_zone)) for name, ms in earliest_ms.items()}
        for biz_name, first in earliest.items():
            app = apps[biz_name]
            if app.first_day is None or first < app.first_day:
                await connection.execute(
                    update(store.apps).where(store.apps.c.biz_name == biz_name).values(first_day=first)
                )
        for biz_name, day in sorted(late):
            await self._adjust(connection, apps[biz_name], day, now_ms, now)

    async def _adjust(
        self, connection: AsyncConnection, app: Row[Any], day: date, now_ms: int, now: datetime
    ) -> None:
        current = await day_figures(connection, app, day, now_ms)
        delta = current.minus(await frozen_and_adjusted(connection, app.biz_name, day))
        if delta.is_zero():
            return
        await connection.execute(
            store.adjustments.insert().values(biz_name=app.biz_name, day=day, posted_at=now, **delta.values())
        )
        log.info("usage_adjusted", biz_name=app.biz_name, day=day.isoformat(), **delta.values())
        await self._rating.rate_day(connection, app, day, now)

    async def close_due_days(self) -> int:
        """Close every day whose lateness has passed; return how many were closed."""
        now = self._clock()
        now_ms = to_ms(now)
        async with self._engine.connect() as connection:
            candidates = (
                await connection.execute(
                    select(
                        store.apps.c.biz_name,
                        store.apps.c.first_day,
                        store.apps.c.closed_through,
                        store.apps.c.time_zone,
                    ).where(store.apps.c.first_day.is_not(None))
                )
            ).all()
        closed = 0
        for biz_name, first_day, closed_through, time_zone in candidates:
            day = closed_through + timedelta(days=1) if closed_through else first_day
            while day_window(day, zone(time_zone))[1] + self._lateness_ms <= now_ms:
                if await self._close_day(biz_name, day, now):
                    closed += 1
                day += timedelta(days=1)
        return closed

    async def _close_day(self, biz_name: str, day: date, now: datetime) -> bool:
        async with self._engine.begin() as connection:
            app = (await lock_apps(connection, [biz_name], now))[biz_name]
            if app.closed_through is not None and app.closed_through >= day:
                return False
            figures = await day_figures(connection, app, day, to_ms(now))
            await connection.execute(
                store.days.insert().values(biz_name=biz_name, day=day, closed_at=now, **figures.values())
            )
            await connection.execute(
                update(store.apps).where(store.apps.c.biz_name == biz_name).values(closed_through=day)
            )
            await self._rating.rate_day(connection, app, day, now)
        log.info("usage_day_closed", biz_name=biz_name, day=day.isoformat())
        return True


def _insert_ticks(paramstyle: str) -> str:
    """The tick insert as the driver takes it, rows as tuples: SQLAlchemy's per-row parameter processing
    was a third of the consumer's CPU time (bench/billing_ingest.py), and ticks need no type conversion."""
    columns = list(TICK_COLUMNS)
    marks = (
        [f"${n}" for n in range(1, len(columns) + 1)]
        if paramstyle == "numeric_dollar"
        else ["?"] * len(columns)
    )
    return (
        f"INSERT INTO {store.ticks.name} ({', '.join(columns)}) VALUES ({', '.join(marks)}) "
        "ON CONFLICT (tick_id) DO NOTHING"
    )
