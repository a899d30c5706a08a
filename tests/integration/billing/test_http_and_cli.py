"""Billing through the gateway's operator routes and the `parley usage` / `parley billing` commands: the
issue's JSON, errors with their codes, plan, account, top-up and statement round trips."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from services.cli.main import app as cli
from services.core.config import ServiceName
from tests.testing import start_platform

pytestmark = pytest.mark.integration

LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:")
FIGURES = [
    "callMs", "onlineMs", "publishedStreamMs", "subscribedStreamMs", "rooms", "peakRooms", "onlineUsers",
    "callUsers", "peakOnlineUsers", "peakCallUsers", "billableMinutes",
]  # fmt: skip


async def test_routes_and_commands(tmp_path: Path) -> None:
    biz = f"http{uuid.uuid4().hex[:8]}"
    settings = {"billing": {"group_id": f"billing-{uuid.uuid4()}"}}
    async with start_platform(
        tmp_path, ServiceName.BILLING, ServiceName.GATEWAY, settings=settings
    ) as platform:
        async with httpx.AsyncClient(base_url=platform.http_url, timeout=30) as http:
            overview = (await http.get(f"/v1/apps/{biz}/usage/overview", params={"range": "7d"})).json()
            assert list(overview) == ["bizName", "start", "end", *FIGURES]
            assert overview["callMs"] == {"audio": 0, "360P": 0, "540P": 0, "720P": 0, "1080P": 0}
            trend = (await http.get(f"/v1/apps/{biz}/usage/trend", params={"range": "7d"})).json()
            assert len(trend["days"]) == 7 and list(trend["days"][0]) == ["date", *FIGURES]
            detail = (await http.get(f"/v1/apps/{biz}/usage/detail", params={"range": "yesterday"})).json()
            assert list(detail["days"][0]) == ["date", *FIGURES, "closed", "adjustments"]

            refused = await http.get(f"/v1/apps/{biz}/usage/overview", params={"range": "90d"})
            assert refused.status_code == 400 and refused.json()["code"] == -92001

            plan = {"currency": "EUR", "prices": {"audio": 1, "360P": 2, "540P": 3, "720P": 4, "1080P": 6}}
            set_plan = (await http.put(f"/v1/apps/{biz}/price-plan", json=plan)).json()
            assert set_plan == {
                "currency": "EUR",
                "prices": plan["prices"],
                "timeZone": "UTC",
                "bizName": biz,
            }
            not_prepaid = await http.post(f"/v1/apps/{biz}/account/top-ups", json={"amount": 5})
            assert not_prepaid.status_code == 409 and not_prepaid.json()["reason"] == "ACCOUNT_NOT_PREPAID"
            statement = (await http.get(f"/v1/apps/{biz}/statements/2026-11")).json()
            assert [line["tier"] for line in statement["lines"]] == ["audio", "360P", "540P", "720P", "1080P"]
            assert statement["total"] == 0 and statement["currency"] == "EUR"

        runner = CliRunner()
        url = ["--url", platform.http_url]

        def run(*args: str) -> str:
            result = runner.invoke(cli, [*args, *url])
            assert result.exit_code == 0, result.output
            # The services in this process log to the same stdout the runner captures.
            return "\n".join(line for line in result.output.splitlines() if not LOG_LINE.match(line))

        account = json.loads(
            await asyncio.to_thread(run, "billing", "account", "--biz-name", biz, "--mode", "prepaid")
        )
        assert (account["mode"], account["inArrears"]) == ("prepaid", True)
        account = json.loads(
            await asyncio.to_thread(run, "billing", "top-up", "--biz-name", biz, "--amount", "500")
        )
        assert (account["balance"], account["inArrears"]) == (500, False)
        table = await asyncio.to_thread(run, "usage", "overview", "--biz-name", biz, "--range", "today")
        assert "billableMinutes" in table and "call 720P ms" in table
        answer = json.loads(
            await asyncio.to_thread(run, "usage", "trend", "--biz-name", biz, "--range", "30d", "--json")
        )
        assert len(answer["days"]) == 30
        assert "total" in await asyncio.to_thread(
            run, "billing", "statement", "--biz-name", biz, "--month", "2026-11"
        )
