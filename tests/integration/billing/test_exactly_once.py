"""A generated day of usage published to the real broker shuffled, with 30 % of the facts twice: billing's
figures and statement equal the generator's ground truth to the millisecond, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from parley.billing.v1 import billing_pb2, billing_pb2_grpc

from services.core.config import ServiceName
from tests.integration.billing.generator import generate, shuffled_with_duplicates
from tests.integration.billing.helpers import end_offsets, figures_json, overview, publish, wait_until_read
from tests.testing import start_platform

pytestmark = pytest.mark.integration

PRICES = billing_pb2.TierPrices(audio=1, p360=2, p540=3, p720=5, p1080=8)


async def test_a_shuffled_day_with_duplicates_counts_exactly_once(tmp_path: Path, database_url: str) -> None:
    day = datetime.now(UTC).date() - timedelta(days=3)
    scenario = generate(7, day, tag=f"x{uuid.uuid4().hex[:6]}")
    # Days stay open for the whole test (late usage is test_ledger.py's); a consumer group of its own.
    settings = {"billing": {"lateness_s": 40 * 86_400, "group_id": f"billing-{uuid.uuid4()}"}}
    async with start_platform(
        tmp_path, ServiceName.BILLING, database_url=database_url, settings=settings
    ) as platform:
        stub = platform.stub(billing_pb2_grpc.BillingServiceStub, ServiceName.BILLING)
        for biz_name in scenario.truth:
            await stub.SetPricePlan(billing_pb2.PricePlan(biz_name=biz_name, currency="EUR", prices=PRICES))
        await publish(platform.kafka, shuffled_with_duplicates(scenario.facts, seed=7))
        await wait_until_read(database_url, await end_offsets(platform.kafka), timeout_s=120)

        month = day.strftime("%Y-%m")
        for biz_name, truth in scenario.truth.items():
            expected = truth.as_json()
            assert await overview(stub, biz_name, day) == expected, biz_name
            request = billing_pb2.UsageRequest(
                biz_name=biz_name, start_date=day.isoformat(), end_date=day.isoformat()
            )
            trend = await stub.GetUsageTrend(request)
            assert [figures_json(d.figures) for d in trend.days] == [expected]
            statement = await stub.GetStatement(
                billing_pb2.GetStatementRequest(biz_name=biz_name, month=month)
            )
            assert [line.call_ms for line in statement.lines] == truth.call_ms
            prices = [PRICES.audio, PRICES.p360, PRICES.p540, PRICES.p720, PRICES.p1080]
            amounts = [-(-ms // 60_000) * price for ms, price in zip(truth.call_ms, prices, strict=True)]
            assert [line.amount for line in statement.lines] == amounts
            assert statement.total == sum(amounts) and statement.currency == "EUR"
