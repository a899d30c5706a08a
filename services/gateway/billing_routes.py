"""Operator routes of billing metering (docs/billing.md): usage statistics of seed 002 5.4 (overview, daily
trend, daily detail), monthly statements, price plans and prepaid accounts."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query
from parley.billing.v1 import billing_pb2
from parley.billing.v1.billing_pb2_grpc import BillingServiceStub
from pydantic import AliasChoices, ConfigDict, Field

from services.gateway.http_api import ApiModel

RPC_TIMEOUT_S = 30
RangeQuery = Query(default="", description="today, yesterday, 7d or 30d; or start and end")
DateQuery = Query(default="", description="YYYY-MM-DD in the app's time zone; both included, at most 30 days")


class CallMsOut(ApiModel):
    """Milliseconds of call by tier, each video tier "that resolution or below" (seed 002 5.4)."""

    model_config = ConfigDict(populate_by_name=True)

    audio: int
    p360: int = Field(validation_alias=AliasChoices("360P", "p360"), serialization_alias="360P")
    p540: int = Field(validation_alias=AliasChoices("540P", "p540"), serialization_alias="540P")
    p720: int = Field(validation_alias=AliasChoices("720P", "p720"), serialization_alias="720P")
    p1080: int = Field(validation_alias=AliasChoices("1080P", "p1080"), serialization_alias="1080P")


class FiguresOut(ApiModel):
    call_ms: CallMsOut
    online_ms: int
    published_stream_ms: int
    subscribed_stream_ms: int
    rooms: int
    peak_rooms: int
    online_users: int
    call_users: int
    peak_online_users: int
    peak_call_users: int
    billable_minutes: int

    @classmethod
    def of(cls, figures: billing_pb2.UsageFigures) -> dict[str, Any]:
        """The figures as fields to merge into an answer (the issue's flat JSON)."""
        call = figures.call_ms
        return cls(
            call_ms=CallMsOut(
                audio=call.audio, p360=call.p360, p540=call.p540, p720=call.p720, p1080=call.p1080
            ),
            online_ms=figures.online_ms,
            published_stream_ms=figures.published_stream_ms,
            subscribed_stream_ms=figures.subscribed_stream_ms,
            rooms=figures.rooms,
            peak_rooms=figures.peak_rooms,
            online_users=figures.online_users,
            call_users=figures.call_users,
            peak_online_users=figures.peak_online_users,
            peak_call_users=figures.peak_call_users,
            billable_minutes=figures.billable_minutes,
        ).model_dump()


class SpanOfDays(ApiModel):
    biz_name: str
    start: str
    end: str


class Dated(ApiModel):
    date: str


# Pydantic puts the fields of later bases first: the span or the date, then the figures.
class OverviewOut(FiguresOut, SpanOfDays):
    pass


class AdjustmentOut(FiguresOut, Dated):
    posted_at: str


class DayOut(FiguresOut, Dated):
    pass


class DetailDayOut(DayOut):
    closed: bool
    adjustments: list[AdjustmentOut]


class TrendOut(SpanOfDays):
    days: list[DayOut]


class DetailOut(SpanOfDays):
    days: list[DetailDayOut]


class StatementLineOut(ApiModel):
    tier: str
    call_ms: int
    minutes: int
    price_per_minute: int
    amount: int


class StatementAdjustmentOut(ApiModel):
    date: str
    posted: str
    tier: str
    call_ms: int
    amount: int


class StatementOut(ApiModel):
    biz_name: str
    month: str
    currency: str
    lines: list[StatementLineOut]
    adjustments: list[StatementAdjustmentOut]
    total: int
    final: bool


class TierPricesModel(ApiModel):
    """Price per minute in the currency's minor unit."""

    model_config = ConfigDict(populate_by_name=True)

    audio: int = Field(ge=0)
    p360: int = Field(ge=0, validation_alias=AliasChoices("360P", "p360"), serialization_alias="360P")
    p540: int = Field(ge=0, validation_alias=AliasChoices("540P", "p540"), serialization_alias="540P")
    p720: int = Field(ge=0, validation_alias=AliasChoices("720P", "p720"), serialization_alias="720P")
    p1080: int = Field(ge=0, validation_alias=AliasChoices("1080P", "p1080"), serialization_alias="1080P")


class PricePlanBody(ApiModel):
    currency: str = Field(min_length=3, max_length=3)
    prices: TierPricesModel
    time_zone: str = "UTC"


class PricePlanOut(PricePlanBody):
    biz_name: str


class EntryOut(ApiModel):
    entry_id: str
    kind: str
    amount: int
    date: str
    created_at: str


class AccountBody(ApiModel):
    mode: Literal["postpaid", "prepaid"]
    unit: Literal["money", "minutes"] = "money"


class AccountOut(AccountBody):
    biz_name: str
    balance: int
    in_arrears: bool
    entries: list[EntryOut]


class TopUpBody(ApiModel):
    # Money: the currency's minor unit; minutes: milliseconds.
    amount: int = Field(gt=0)
    # The same id twice tops up once (a retried request).
    top_up_id: str = Field(default="", max_length=64)


def _plan(plan: billing_pb2.PricePlan) -> PricePlanOut:
    prices = plan.prices
    return PricePlanOut(
        biz_name=plan.biz_name,
        currency=plan.currency,
        prices=TierPricesModel(
            audio=prices.audio, p360=prices.p360, p540=prices.p540, p720=prices.p720, p1080=prices.p1080
        ),
        time_zone=plan.time_zone,
    )


def _account(account: billing_pb2.Account) -> AccountOut:
    return AccountOut(
        biz_name=account.biz_name,
        mode=account.mode,  # type: ignore[arg-type]
        unit=account.unit,  # type: ignore[arg-type]
        balance=account.balance,
        in_arrears=account.in_arrears,
        entries=[
            EntryOut(
                entry_id=entry.entry_id,
                kind=entry.kind,
                amount=entry.amount,
                date=entry.date,
                created_at=entry.created_at.ToJsonString(),
            )
            for entry in account.entries
        ],
    )


def billing_router(billing: BillingServiceStub) -> APIRouter:
    router = APIRouter(prefix="/v1/apps/{biz_name}", tags=["billing"])

    def usage_request(biz_name: str, range_name: str, start: str, end: str) -> billing_pb2.UsageRequest:
        return billing_pb2.UsageRequest(biz_name=biz_name, range=range_name, start_date=start, end_date=end)

    @router.get("/usage/overview", summary="Usage figures of a span of days")
    async def overview(
        biz_name: str, range: str = RangeQuery, start: str = DateQuery, end: str = DateQuery
    ) -> OverviewOut:
        answer = await billing.GetUsageOverview(
            usage_request(biz_name, range, start, end), timeout=RPC_TIMEOUT_S
        )
        return OverviewOut(
            biz_name=answer.biz_name, start=answer.start, end=answer.end, **FiguresOut.of(answer.figures)
        )

    @router.get("/usage/trend", summary="Usage figures of each day of a span")
    async def trend(
        biz_name: str, range: str = RangeQuery, start: str = DateQuery, end: str = DateQuery
    ) -> TrendOut:
        answer = await billing.GetUsageTrend(
            usage_request(biz_name, range, start, end), timeout=RPC_TIMEOUT_S
        )
        return TrendOut(
            biz_name=answer.biz_name,
            start=answer.start,
            end=answer.end,
            days=[DayOut(date=day.date, **FiguresOut.of(day.figures)) for day in answer.days],
        )

    @router.get("/usage/detail", summary="Each day's figures, whether it is closed, and its adjustments")
    async def detail(
        biz_name: str, range: str = RangeQuery, start: str = DateQuery, end: str = DateQuery
    ) -> DetailOut:
        answer = await billing.GetUsageDetail(
            usage_request(biz_name, range, start, end), timeout=RPC_TIMEOUT_S
        )
        return DetailOut(
            biz_name=answer.biz_name,
            start=answer.start,
            end=answer.end,
            days=[
                DetailDayOut(
                    date=day.date,
                    closed=day.closed,
                    adjustments=[
                        AdjustmentOut(
                            date=item.date,
                            posted_at=item.posted_at.ToJsonString(),
                            **FiguresOut.of(item.delta),
                        )
                        for item in day.adjustments
                    ],
                    **FiguresOut.of(day.figures),
                )
                for day in answer.days
            ],
        )

    @router.get("/statements/{month}", summary="The monthly statement: call time by tier, rated")
    async def statement(
        biz_name: str, month: str = Path(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")
    ) -> StatementOut:
        answer = await billing.GetStatement(
            billing_pb2.GetStatementRequest(biz_name=biz_name, month=month), timeout=RPC_TIMEOUT_S
        )
        return StatementOut(
            biz_name=answer.biz_name,
            month=answer.month,
            currency=answer.currency,
            lines=[
                StatementLineOut(
                    tier=line.tier,
                    call_ms=line.call_ms,
                    minutes=line.minutes,
                    price_per_minute=line.price_per_minute,
                    amount=line.amount,
                )
                for line in answer.lines
            ],
            adjustments=[
                StatementAdjustmentOut(
                    date=item.date,
                    posted=item.posted,
                    tier=item.tier,
                    call_ms=item.call_ms,
                    amount=item.amount,
                )
                for item in answer.adjustments
            ],
            total=answer.total,
            final=answer.final,
        )

    @router.get("/price-plan", summary="The app's price plan")
    async def get_plan(biz_name: str) -> PricePlanOut:
        return _plan(
            await billing.GetPricePlan(
                billing_pb2.GetPricePlanRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
            )
        )

    @router.put("/price-plan", summary="Set the price per minute of each tier, the currency and time zone")
    async def set_plan(body: PricePlanBody, biz_name: str) -> PricePlanOut:
        prices = body.prices
        plan = billing_pb2.PricePlan(
            biz_name=biz_name,
            currency=body.currency,
            prices=billing_pb2.TierPrices(
                audio=prices.audio, p360=prices.p360, p540=prices.p540, p720=prices.p720, p1080=prices.p1080
            ),
            time_zone=body.time_zone,
        )
        return _plan(await billing.SetPricePlan(plan, timeout=RPC_TIMEOUT_S))

    @router.get("/account", summary="The account: mode, balance and every entry of it")
    async def get_account(biz_name: str) -> AccountOut:
        return _account(
            await billing.GetAccount(billing_pb2.GetAccountRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S)
        )

    @router.put("/account", summary="Make the account post-paid or prepaid (in money or minutes)")
    async def set_account(body: AccountBody, biz_name: str) -> AccountOut:
        request = billing_pb2.SetAccountRequest(biz_name=biz_name, mode=body.mode, unit=body.unit)
        return _account(await billing.SetAccount(request, timeout=RPC_TIMEOUT_S))

    @router.post("/account/top-ups", summary="Add to a prepaid balance; a positive balance ends arrears")
    async def top_up(body: TopUpBody, biz_name: str) -> AccountOut:
        request = billing_pb2.TopUpRequest(biz_name=biz_name, amount=body.amount, top_up_id=body.top_up_id)
        return _account(await billing.TopUp(request, timeout=RPC_TIMEOUT_S))

    return router
