"""Price plans, monthly statements, and prepaid accounts (docs/billing.md, "Rating and accounts").

A prepaid balance is never a number overwritten in place: it is the sum of `billing_entries`. Top-ups
add entries; usage is charged per local day by `rate_day`, which posts the difference between what the
day's call time costs now and what was charged for it before (so charging again after a crash, or
after late usage, posts only what is missing). When a prepaid balance reaches zero the app goes into
arrears, and back out when a top-up makes it positive; each change is an `AccountStatusChanged` staged
in billing's outbox in the same transaction (the licence service then answers device calls with -15,
seed 000; the room manager refuses create_room and join_room).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from parley.billing.v1 import events_pb2 as billing_events
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.billing import store
from services.billing.errors import ACCOUNT_INVALID, NOT_PREPAID, PLAN_INVALID, TOP_UP_INVALID
from services.billing.figures import MINUTE_MS, Figures, Tier
from services.billing.periods import day_of, days, parse_month, to_ms, zone
from services.billing.queries import day_figures, figures_of_row, lock_apps
from services.core.outbox import Outbox
from services.core.timestamps import timestamp
from services.core.topics import Topic

log = structlog.get_logger(__name__)

PRICE_COLUMNS = ("price_audio", "price_360p", "price_540p", "price_720p", "price_1080p")
MODES = ("postpaid", "prepaid")
UNITS = ("money", "minutes")
USAGE = "usage"
TOP_UP = "top_up"


def prices_of(app: Row[Any]) -> list[int]:
    return [int(getattr(app, column)) for column in PRICE_COLUMNS]


def day_charge(figures: Figures, app: Row[Any]) -> int:
    """What a day's call time costs a prepaid account, in its unit: milliseconds of call for a minute
    quota; money by the millisecond at the plan's per-minute prices, rounded up once per day."""
    if app.unit == "minutes":
        return sum(figures.call_ms())
    cost = sum(ms * price for ms, price in zip(figures.call_ms(), prices_of(app), strict=True))
    return -(-cost // MINUTE_MS)


@dataclass(frozen=True)
class PricePlan:
    biz_name: str
    currency: str
    prices: list[int]
    time_zone: str


@dataclass(frozen=True)
class Entry:
    entry_id: str
    kind: str
    amount: int
    day: date | None
    created_at: datetime


@dataclass(frozen=True)
class Account:
    biz_name: str
    mode: str
    unit: str
    balance: int
    in_arrears: bool
    entries: list[Entry]


@dataclass(frozen=True)
class StatementLine:
    tier: Tier
    call_ms: int
    minutes: int
    price_per_minute: int
    amount: int


@dataclass(frozen=True)
class StatementAdjustment:
    day: date
    posted: date
    tier: Tier
    call_ms: int
    amount: int


@dataclass(frozen=True)
class Statement:
    biz_name: str
    month: str
    currency: str
    lines: list[StatementLine]
    adjustments: list[StatementAdjustment] = field(default_factory=list)
    total: int = 0
    final: bool = False


def _signed_cost(ms: int, price: int) -> int:
    """Per-minute price of `ms` (possibly negative), rounded away from zero to the minor unit."""
    magnitude = -(-abs(ms) * price // MINUTE_MS)
    return magnitude if ms >= 0 else -magnitude


class Rating:
    """Charges prepaid accounts and keeps their arrears status; used inside the ledger's transactions."""

    def __init__(self, outbox: Outbox | None) -> None:
        self._outbox = outbox

    async def rate_day(self, connection: AsyncConnection, app: Row[Any], day: date, now: datetime) -> None:
        """Charge a prepaid app what `day`'s call time costs beyond what was charged for it already."""
        if app.mode != "prepaid" or app.prepaid_since is None or day < app.prepaid_since:
            return
        figures = await day_figures(connection, app, day, to_ms(now))
        charged = -int(
            await connection.scalar(
                select(func.coalesce(func.sum(store.entries.c.amount), 0)).where(
                    store.entries.c.biz_name == app.biz_name,
                    store.entries.c.kind == USAGE,
                    store.entries.c.day == day,
                )
            )
            or 0
        )
        missing = day_charge(figures, app) - charged
        if missing:
            await connection.execute(
                store.entries.insert().values(
                    entry_id=f"{USAGE}:{uuid.uuid4()}",
                    biz_name=app.biz_name,
                    kind=USAGE,
                    amount=-missing,
                    day=day,
                    created_at=now,
                )
            )
        await self.settle(connection, app, now)

    async def settle(self, connection: AsyncConnection, app: Row[Any], now: datetime) -> None:
        """Put the app into arrears or out of them as its balance says, with the fact in the outbox."""
        balance = await _balance(connection, app.biz_name)
        in_arrears = app.mode == "prepaid" and balance <= 0
        if in_arrears == app.in_arrears:
            return
        await connection.execute(
            update(store.apps)
            .where(store.apps.c.biz_name == app.biz_name)
            .values(in_arrears=in_arrears, updated_at=now)
        )
        log.info("account_status_changed", biz_name=app.biz_name, in_arrears=in_arrears, balance=balance)
        if self._outbox is not None:
            await self._outbox.stage(
                connection,
                Topic.BILLING,
                billing_events.AccountStatusChanged(
                    biz_name=app.biz_name, in_arrears=in_arrears, changed_at=timestamp(now)
                ),
                key=app.biz_name,
            )


async def _balance(connection: AsyncConnection, biz_name: str) -> int:
    return int(
        await connection.scalar(
            select(func.coalesce(func.sum(store.entries.c.amount), 0)).where(
                store.entries.c.biz_name == biz_name
            )
        )
        or 0
    )


class Accounts:
    def __init__(
        self, engine: AsyncEngine, rating: Rating, outbox: Outbox | None, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._rating = rating
        self._outbox = outbox
        self._clock = clock

    async def _app(self, connection: AsyncConnection, biz_name: str) -> Row[Any]:
        return (await lock_apps(connection, [biz_name], self._clock()))[biz_name]

    async def price_plan(self, biz_name: str) -> PricePlan:
        async with self._engine.begin() as connection:
            return _plan(await self._app(connection, biz_name))

    async def set_price_plan(self, plan: PricePlan) -> PricePlan:
        if len(plan.currency) != 3 or not plan.currency.isalpha():
            raise PLAN_INVALID("currency must be an ISO 4217 code such as USD")
        if len(plan.prices) != len(Tier) or any(price < 0 for price in plan.prices):
            raise PLAN_INVALID("a price per minute, 0 or more, for each of audio, 360P, 540P, 720P, 1080P")
        zone(plan.time_zone)
        async with self._engine.begin() as connection:
            await self._app(connection, plan.biz_name)
            await connection.execute(
                update(store.apps)
                .where(store.apps.c.biz_name == plan.biz_name)
                .values(
                    currency=plan.currency.upper(),
                    time_zone=plan.time_zone or "UTC",
                    updated_at=self._clock(),
                    **dict(zip(PRICE_COLUMNS, plan.prices, strict=True)),
                )
            )
            return _plan(await self._app(connection, plan.biz_name))

    async def account(self, biz_name: str) -> Account:
        async with self._engine.begin() as connection:
            return await _account(connection, await self._app(connection, biz_name))

    async def set_account(self, biz_name: str, mode: str, unit: str) -> Account:
        if mode not in MODES:
            raise ACCOUNT_INVALID(f"mode must be one of {', '.join(MODES)}")
        if unit not in UNITS:
            raise ACCOUNT_INVALID(f"unit must be one of {', '.join(UNITS)}")
        now = self._clock()
        async with self._engine.begin() as connection:
            app = await self._app(connection, biz_name)
            if (
                app.mode == "prepaid"
                and mode == "prepaid"
                and unit != app.unit
                and await _balance(connection, biz_name)
            ):
                raise ACCOUNT_INVALID(
                    "a prepaid balance cannot change its unit; use it up or go post-paid first"
                )
            # Prepaid charging starts with the day the account became prepaid (in the app's zone).
            since = (
                app.prepaid_since
                if app.mode == "prepaid" and mode == "prepaid"
                else (day_of(to_ms(now), zone(app.time_zone)) if mode == "prepaid" else None)
            )
            await connection.execute(
                update(store.apps)
                .where(store.apps.c.biz_name == biz_name)
                .values(mode=mode, unit=unit, prepaid_since=since, updated_at=now)
            )
            app = await self._app(connection, biz_name)
            await self._rating.settle(connection, app, now)
            account = await _account(connection, await self._app(connection, biz_name))
        self._published()
        return account

    async def top_up(self, biz_name: str, amount: int, top_up_id: str) -> Account:
        if amount <= 0:
            raise TOP_UP_INVALID("amount must be positive")
        now = self._clock()
        entry_id = f"{TOP_UP}:{biz_name}:{top_up_id or uuid.uuid4()}"
        async with self._engine.begin() as connection:
            app = await self._app(connection, biz_name)
            if app.mode != "prepaid":
                raise NOT_PREPAID(f"app {biz_name} is post-paid: nothing to top up")
            known = await connection.scalar(
                select(store.entries.c.id).where(store.entries.c.entry_id == entry_id)
            )
            if known is None:
                await connection.execute(
                    store.entries.insert().values(
                        entry_id=entry_id,
                        biz_name=biz_name,
                        kind=TOP_UP,
                        amount=amount,
                        day=None,
                        created_at=now,
                    )
                )
                log.info("account_topped_up", biz_name=biz_name, amount=amount)
            await self._rating.settle(connection, app, now)
            account = await _account(connection, await self._app(connection, biz_name))
        self._published()
        return account

    def _published(self) -> None:
        """A status change `settle` may have staged is committed: the outbox publishes it now."""
        if self._outbox is not None:
            self._outbox.notify()

    async def rate_open_days(self) -> None:
        """Charge every prepaid app for its days not closed yet, today included."""
        now = self._clock()
        async with self._engine.connect() as connection:
            names = (
                (
                    await connection.execute(
                        select(store.apps.c.biz_name).where(store.apps.c.mode == "prepaid")
                    )
                )
                .scalars()
                .all()
            )
        for biz_name in names:
            async with self._engine.begin() as connection:
                app = await self._app(connection, biz_name)
                # Days without usage cost nothing: charging starts with the first day that has some.
                if app.prepaid_since is None or app.first_day is None:
                    continue
                today = day_of(to_ms(now), zone(app.time_zone))
                first = max(app.prepaid_since, app.first_day)
                if app.closed_through is not None:
                    first = max(first, app.closed_through + timedelta(days=1))
                for day in days(first, today):
                    await self._rating.rate_day(connection, app, day, now)
                    app = await self._app(connection, biz_name)

    async def statement(self, biz_name: str, month: str) -> Statement:
        first, last = parse_month(month)
        now = self._clock()
        async with self._engine.begin() as connection:
            app = await self._app(connection, biz_name)
            tz = zone(app.time_zone)
            frozen = {
                row.day: figures_of_row(row)
                for row in await connection.execute(
                    select(store.days).where(
                        store.days.c.biz_name == biz_name, store.days.c.day.between(first, last)
                    )
                )
            }
            total_ms = [0] * len(Tier)
            closed_through = app.closed_through
            final = closed_through is not None and closed_through >= last
            for day in days(first, last):
                if closed_through is not None and day <= closed_through:
                    figures = frozen.get(day, Figures())
                else:
                    figures = await day_figures(connection, app, day, to_ms(now))
                total_ms = [a + b for a, b in zip(total_ms, figures.call_ms(), strict=True)]
            prices = prices_of(app)
            lines = []
            for tier, ms, price in zip(Tier, total_ms, prices, strict=True):
                minutes = -(-ms // MINUTE_MS)
                lines.append(StatementLine(tier, ms, minutes, price, minutes * price))
            adjustments = []
            window_start = datetime.combine(first, datetime.min.time(), tzinfo=tz).astimezone(UTC)
            window_end = datetime.combine(
                last + timedelta(days=1), datetime.min.time(), tzinfo=tz
            ).astimezone(UTC)
            for row in await connection.execute(
                select(store.adjustments)
                .where(
                    store.adjustments.c.biz_name == biz_name,
                    store.adjustments.c.posted_at >= window_start,
                    store.adjustments.c.posted_at < window_end,
                )
                .order_by(store.adjustments.c.id)
            ):
                delta = figures_of_row(row)
                for tier, ms, price in zip(Tier, delta.call_ms(), prices, strict=True):
                    if ms:
                        posted = row.posted_at.astimezone(tz).date()
                        adjustments.append(
                            StatementAdjustment(row.day, posted, tier, ms, _signed_cost(ms, price))
                        )
        total = sum(line.amount for line in lines) + sum(item.amount for item in adjustments)
        return Statement(biz_name, month, app.currency, lines, adjustments, total, final)


def _plan(app: Row[Any]) -> PricePlan:
    return PricePlan(app.biz_name, app.currency, prices_of(app), app.time_zone)


async def _account(connection: AsyncConnection, app: Row[Any]) -> Account:
    rows = await connection.execute(
        select(store.entries).where(store.entries.c.biz_name == app.biz_name).order_by(store.entries.c.id)
    )
    entries = [Entry(row.entry_id, row.kind, row.amount, row.day, row.created_at) for row in rows]
    return Account(
        app.biz_name, app.mode, app.unit, sum(entry.amount for entry in entries), app.in_arrears, entries
    )
