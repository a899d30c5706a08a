"""BillingService over gRPC: a thin translation onto usage statistics and accounts."""

from __future__ import annotations

import grpc
from parley.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.accounts import Account, Accounts, PricePlan, Statement
from services.billing.figures import Figures
from services.billing.usage import DayUsage, UsageQuery, UsageStatistics
from services.core.errors import require_fields
from services.core.timestamps import timestamp


def figures_message(figures: Figures) -> billing_pb2.UsageFigures:
    call = figures.call_ms()
    return billing_pb2.UsageFigures(
        call_ms=billing_pb2.CallMs(audio=call[0], p360=call[1], p540=call[2], p720=call[3], p1080=call[4]),
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
    )


def _query(request: billing_pb2.UsageRequest) -> UsageQuery:
    require_fields(biz_name=request.biz_name)
    return UsageQuery(request.biz_name, request.range, request.start_date, request.end_date)


def _day(usage: DayUsage) -> billing_pb2.UsageDay:
    return billing_pb2.UsageDay(
        date=usage.day.isoformat(),
        figures=figures_message(usage.figures),
        closed=usage.closed,
        adjustments=[
            billing_pb2.Adjustment(
                date=item.day.isoformat(),
                delta=figures_message(item.delta),
                posted_at=timestamp(item.posted_at),
            )
            for item in usage.adjustments
        ],
    )


def _plan(plan: PricePlan) -> billing_pb2.PricePlan:
    audio, p360, p540, p720, p1080 = plan.prices
    return billing_pb2.PricePlan(
        biz_name=plan.biz_name,
        currency=plan.currency,
        prices=billing_pb2.TierPrices(audio=audio, p360=p360, p540=p540, p720=p720, p1080=p1080),
        time_zone=plan.time_zone,
    )


def _account(account: Account) -> billing_pb2.Account:
    return billing_pb2.Account(
        biz_name=account.biz_name,
        mode=account.mode,
        unit=account.unit,
        balance=account.balance,
        in_arrears=account.in_arrears,
        entries=[
            billing_pb2.AccountEntry(
                entry_id=entry.entry_id,
                kind=entry.kind,
                amount=entry.amount,
                date=entry.day.isoformat() if entry.day else "",
                created_at=timestamp(entry.created_at),
            )
            for entry in account.entries
        ],
    )


def _statement(statement: Statement) -> billing_pb2.Statement:
    return billing_pb2.Statement(
        biz_name=statement.biz_name,
        month=statement.month,
        currency=statement.currency,
        lines=[
            billing_pb2.StatementLine(
                tier=line.tier.label,
                call_ms=line.call_ms,
                minutes=line.minutes,
                price_per_minute=line.price_per_minute,
                amount=line.amount,
            )
            for line in statement.lines
        ],
        adjustments=[
            billing_pb2.StatementAdjustment(
                date=item.day.isoformat(),
                posted=item.posted.isoformat(),
                tier=item.tier.label,
                call_ms=item.call_ms,
                amount=item.amount,
            )
            for item in statement.adjustments
        ],
        total=statement.total,
        final=statement.final,
    )


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, usage: UsageStatistics, accounts: Accounts) -> None:
        self._usage = usage
        self._accounts = accounts

    async def GetUsageOverview(
        self, request: billing_pb2.UsageRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.UsageOverview:
        span, figures = await self._usage.overview(_query(request))
        return billing_pb2.UsageOverview(
            biz_name=request.biz_name,
            start=span.first.isoformat(),
            end=span.last.isoformat(),
            figures=figures_message(figures),
        )

    async def _days(
        self, request: billing_pb2.UsageRequest, *, with_adjustments: bool
    ) -> billing_pb2.UsageDays:
        span, days = await self._usage.per_day(_query(request), with_adjustments=with_adjustments)
        return billing_pb2.UsageDays(
            biz_name=request.biz_name,
            start=span.first.isoformat(),
            end=span.last.isoformat(),
            days=[_day(day) for day in days],
        )

    async def GetUsageTrend(
        self, request: billing_pb2.UsageRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.UsageDays:
        return await self._days(request, with_adjustments=False)

    async def GetUsageDetail(
        self, request: billing_pb2.UsageRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.UsageDays:
        return await self._days(request, with_adjustments=True)

    async def GetStatement(
        self, request: billing_pb2.GetStatementRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Statement:
        require_fields(biz_name=request.biz_name, month=request.month)
        return _statement(await self._accounts.statement(request.biz_name, request.month))

    async def GetPricePlan(
        self, request: billing_pb2.GetPricePlanRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.PricePlan:
        require_fields(biz_name=request.biz_name)
        return _plan(await self._accounts.price_plan(request.biz_name))

    async def SetPricePlan(
        self, request: billing_pb2.PricePlan, context: grpc.aio.ServicerContext
    ) -> billing_pb2.PricePlan:
        require_fields(biz_name=request.biz_name, currency=request.currency)
        prices = request.prices
        plan = PricePlan(
            request.biz_name,
            request.currency,
            [prices.audio, prices.p360, prices.p540, prices.p720, prices.p1080],
            request.time_zone or "UTC",
        )
        return _plan(await self._accounts.set_price_plan(plan))

    async def GetAccount(
        self, request: billing_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Account:
        require_fields(biz_name=request.biz_name)
        return _account(await self._accounts.account(request.biz_name))

    async def SetAccount(
        self, request: billing_pb2.SetAccountRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Account:
        require_fields(biz_name=request.biz_name, mode=request.mode)
        return _account(
            await self._accounts.set_account(request.biz_name, request.mode, request.unit or "money")
        )

    async def TopUp(
        self, request: billing_pb2.TopUpRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Account:
        require_fields(biz_name=request.biz_name)
        return _account(await self._accounts.top_up(request.biz_name, request.amount, request.top_up_id))
