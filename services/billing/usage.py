"""The usage statistics an operator asks for (seed 002 5.4): overview, daily trend and daily detail of one
app over today, yesterday, the last 7 or 30 days, or a custom span of days."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.billing import store
from services.billing.figures import Figures
from services.billing.periods import DaySpan, day_of, day_window, resolve, to_ms, zone
from services.billing.queries import figures_in, figures_of_row


@dataclass(frozen=True)
class Adjustment:
    day: date
    delta: Figures
    posted_at: datetime


@dataclass(frozen=True)
class DayUsage:
    day: date
    figures: Figures
    closed: bool
    adjustments: list[Adjustment] = field(default_factory=list)


@dataclass(frozen=True)
class UsageQuery:
    biz_name: str
    range: str = ""
    start: str = ""
    end: str = ""


class UsageStatistics:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    async def _span(self, connection: AsyncConnection, query: UsageQuery) -> tuple[DaySpan, str, date | None]:
        app = (
            await connection.execute(
                select(store.apps.c.time_zone, store.apps.c.closed_through).where(
                    store.apps.c.biz_name == query.biz_name
                )
            )
        ).first()
        time_zone, closed_through = (app.time_zone, app.closed_through) if app else ("UTC", None)
        today = day_of(to_ms(self._clock()), zone(time_zone))
        return resolve(query.range, query.start, query.end, today=today), time_zone, closed_through

    async def overview(self, query: UsageQuery) -> tuple[DaySpan, Figures]:
        """The figures of the whole span: distinct users and peaks over all of it, not sums of days."""
        async with self._engine.connect() as connection:
            span, time_zone, _ = await self._span(connection, query)
            figures = await figures_in(
                connection, query.biz_name, span.window(zone(time_zone)), to_ms(self._clock())
            )
        return span, figures

    async def per_day(self, query: UsageQuery, *, with_adjustments: bool) -> tuple[DaySpan, list[DayUsage]]:
        now_ms = to_ms(self._clock())
        async with self._engine.connect() as connection:
            span, time_zone, closed_through = await self._span(connection, query)
            tz = zone(time_zone)
            adjustments: dict[date, list[Adjustment]] = {}
            if with_adjustments:
                rows = await connection.execute(
                    select(store.adjustments)
                    .where(
                        store.adjustments.c.biz_name == query.biz_name,
                        store.adjustments.c.day.between(span.first, span.last),
                    )
                    .order_by(store.adjustments.c.id)
                )
                for row in rows:
                    adjustments.setdefault(row.day, []).append(
                        Adjustment(row.day, figures_of_row(row), row.posted_at)
                    )
            result = []
            for day in span.days():
                figures = await figures_in(connection, query.biz_name, day_window(day, tz), now_ms)
                closed = closed_through is not None and day <= closed_through
                result.append(DayUsage(day, figures, closed, adjustments.get(day, [])))
        return span, result
