"""The ledger and accounts on a real database (SQLite and PostgreSQL), driven directly with a clock the
test moves: late usage becomes adjustments (figures, detail and statement agree), prepaid accounts are
charged by ledger entries and go into arrears and out of them with an outbox fact, ranges are checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from parley.billing.v1 import events_pb2 as billing_events
from parley.relay.v1 import media_pb2, metering_pb2
from parley.rooms.v1 import events_pb2 as room_events
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing import store
from services.billing.accounts import Accounts, PricePlan, Rating
from services.billing.figures import Tier
from services.billing.inputs import Batch
from services.billing.ledger import UsageLedger
from services.billing.periods import to_ms
from services.billing.usage import UsageQuery, UsageStatistics
from services.core.errors import ParleyError
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from tests.clock import FakeClock

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 10)
MINUTE = 60_000


def at(day: date, hour: int, minute: int = 0) -> int:
    return to_ms(datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC))


def tick(tick_id: str, biz: str, uid: str, start: int, end: int, tier: int, *, stream: str = "s1") -> Batch:
    batch = Batch()
    kind = (
        media_pb2.MEDIA_KIND_AUDIO if tier == media_pb2.RESOLUTION_TIER_AUDIO else media_pb2.MEDIA_KIND_VIDEO
    )
    message = metering_pb2.MeteringTick(
        tick_id=tick_id, biz_name=biz, room_id="r1", uid=uid, stream_id=stream, kind=kind, tier=tier,
        role=metering_pb2.STREAM_ROLE_SUBSCRIPTION, duration_ms=end - start,
    )  # fmt: skip
    message.start_time.FromMilliseconds(start)
    message.end_time.FromMilliseconds(end)
    batch.add(message.DESCRIPTOR.full_name, message.SerializeToString())
    return batch


class Billing:
    def __init__(self, engine: AsyncEngine, clock: FakeClock) -> None:
        self.engine = engine
        self.outbox = Outbox(store.outbox, engine, publisher=None)  # type: ignore[arg-type]  # staged only
        self.rating = Rating(self.outbox)
        self.ledger = UsageLedger(engine, self.rating, lateness=timedelta(hours=1), clock=clock.utc)
        self.accounts = Accounts(engine, self.rating, self.outbox, clock.utc)
        self.usage = UsageStatistics(engine, clock.utc)

    async def staged(self) -> list[bool]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(store.outbox.c.payload).order_by(store.outbox.c.id))
            return [billing_events.AccountStatusChanged.FromString(row.payload).in_arrears for row in rows]


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(utc_at_start=datetime(2026, 11, 12, 12, 0, tzinfo=UTC))


@pytest.fixture
async def billing(database_url: str, clock: FakeClock) -> AsyncIterator[Billing]:
    engine = store.open_engine(database_url)
    await upgrade_to_head(engine, "services.billing")
    yield Billing(engine, clock)
    await engine.dispose()


async def test_usage_after_a_day_closed_is_an_adjustment_in_figures_detail_and_statement(
    billing: Billing,
) -> None:
    await billing.accounts.set_price_plan(PricePlan("late", "EUR", [1, 2, 3, 10, 20], "UTC"))
    await billing.ledger.apply(
        tick("a:video:1", "late", "bob", at(DAY, 10), at(DAY, 10, 2), media_pb2.RESOLUTION_TIER_720P)
    )
    assert (
        await billing.ledger.close_due_days() == 2
    )  # the 10th and the 11th: their hour of lateness has passed

    late = tick(
        "b:audio:1", "late", "bob", at(DAY, 11), at(DAY, 11, 1), media_pb2.RESOLUTION_TIER_AUDIO, stream="s2"
    )
    await billing.ledger.apply(late)
    await billing.ledger.apply(late)  # delivered twice: one adjustment

    query = UsageQuery("late", start=DAY.isoformat(), end=DAY.isoformat())
    _, figures = await billing.usage.overview(query)
    assert figures.call_ms() == [MINUTE, 0, 0, 2 * MINUTE, 0]
    _, (day,) = await billing.usage.per_day(query, with_adjustments=True)
    assert day.closed and len(day.adjustments) == 1
    delta = day.adjustments[0].delta
    assert (delta.call_audio_ms, delta.subscribed_stream_ms, delta.billable_minutes) == (MINUTE, MINUTE, 1)

    statement = await billing.accounts.statement("late", "2026-11")
    assert [line.call_ms for line in statement.lines] == [0, 0, 0, 2 * MINUTE, 0]
    assert [(a.day, a.tier, a.call_ms, a.amount) for a in statement.adjustments] == [
        (DAY, Tier.AUDIO, MINUTE, 1)
    ]
    assert statement.total == 2 * 10 + 1


async def test_a_session_whose_end_arrives_late_is_corrected(billing: Billing, clock: FakeClock) -> None:
    opened = room_events.SessionOpened(session_id="s", biz_name="sessions", uid="ann")
    opened.opened_at.FromMilliseconds(at(DAY, 23))
    batch = Batch()
    batch.add(opened.DESCRIPTOR.full_name, opened.SerializeToString())
    await billing.ledger.apply(batch)
    await billing.ledger.close_due_days()  # still open at the close: counted to the end of the day
    closed = room_events.SessionClosed(
        session_id="s", biz_name="sessions", uid="ann", opened_at=opened.opened_at
    )
    closed.closed_at.FromMilliseconds(at(DAY, 23, 30))
    batch = Batch()
    batch.add(closed.DESCRIPTOR.full_name, closed.SerializeToString())
    await billing.ledger.apply(batch)
    _, days = await billing.usage.per_day(
        UsageQuery("sessions", start=DAY.isoformat(), end=(DAY + timedelta(days=1)).isoformat()),
        with_adjustments=True,
    )
    assert [d.figures.online_ms for d in days] == [30 * MINUTE, 0]
    assert [a.delta.online_ms for a in days[0].adjustments] == [-30 * MINUTE]
    # The 11th had counted the open session all day long.
    assert [a.delta.online_ms for a in days[1].adjustments] == [-24 * 60 * MINUTE]


async def test_a_prepaid_minute_quota_runs_out_and_a_top_up_restores_it(
    billing: Billing, clock: FakeClock
) -> None:
    account = await billing.accounts.set_account("pre", "prepaid", "minutes")
    assert account.in_arrears  # nothing on it yet
    await billing.accounts.top_up("pre", MINUTE, "t1")
    await billing.accounts.top_up("pre", MINUTE, "t1")  # a retried top-up counts once
    today = clock.utc().date()
    start = at(today, 11)
    await billing.ledger.apply(
        tick("c:audio:1", "pre", "bob", start, start + 40_000, media_pb2.RESOLUTION_TIER_AUDIO)
    )
    await billing.accounts.rate_open_days()
    assert not (await billing.accounts.account("pre")).in_arrears
    await billing.ledger.apply(
        tick("c:audio:2", "pre", "bob", start + 40_000, start + 90_000, media_pb2.RESOLUTION_TIER_AUDIO)
    )
    await billing.accounts.rate_open_days()
    await billing.accounts.rate_open_days()  # nothing new to charge: no new entry
    account = await billing.accounts.account("pre")
    assert (account.balance, account.in_arrears) == (MINUTE - 90_000, True)
    assert [(e.kind, e.amount) for e in account.entries] == [
        ("top_up", MINUTE),
        ("usage", -40_000),
        ("usage", -50_000),
    ]
    account = await billing.accounts.top_up("pre", MINUTE, "t2")
    assert (account.balance, account.in_arrears) == (2 * MINUTE - 90_000, False)
    # Arrears at once (empty prepaid account), out after the top-up, in again, out again.
    assert await billing.staged() == [True, False, True, False]


@pytest.mark.parametrize(
    ("range_name", "start", "end"),
    [
        ("week", "", ""),
        ("", "2026-11-01", "2026-12-15"),
        ("", "2026-11-10", "2026-11-01"),
        ("", "2025-01-01", "2025-01-02"),
        ("", "2026-13-01", "2026-13-02"),
        ("7d", "2026-11-01", ""),
    ],
)
async def test_ranges_the_seed_does_not_offer_are_refused_with_a_code(
    billing: Billing, range_name: str, start: str, end: str
) -> None:
    with pytest.raises(ParleyError) as refused:
        await billing.usage.overview(UsageQuery("any", range_name, start, end))
    assert (refused.value.code, refused.value.kind.reason) == (-92001, "USAGE_RANGE_INVALID")
