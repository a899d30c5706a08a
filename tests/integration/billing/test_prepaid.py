"""A prepaid app whose minute quota runs out during a real call: within 5 s of the ledger entry that took
its balance to zero, a device's call fails with seed 000's -15 and `create_room` is refused with -15; a
top-up restores both. Licence service, room manager, relay, billing and gateway, aiortc clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from parley.billing.v1 import billing_pb2, billing_pb2_grpc

from services.core.config import ServiceName
from tests.integration.billing.calls import CALL_SERVICES, Peers
from tests.integration.licence_helpers import create_app
from tests.integration.protocol_client import Client, Connections
from tests.testing import start_platform

pytestmark = pytest.mark.integration

QUOTA_MS = 3000
# The bound between the balance reaching zero and both refusals.
WITHIN_S = 5.0
# How long a loaded machine may take to carry an account fact to both services.
FACTS_DEADLINE_S = 60


async def refused(device: Client, user: Client, owner: str) -> tuple[bool, bool]:
    """Whether the device's call gets -15, and whether `create_room` gets -15."""
    call = await device.call("call", open_id=owner, media="audio")
    if call["code"] == 0:
        await device.call("hang_up", call_id=call["data"]["call_id"])
    room = await user.call("create_room")
    if room["code"] == 0:
        await user.call("leave_room", room_id=room["data"]["room_id"])
    return call["code"] == -15, room["code"] == -15


async def until_refused(device: Client, user: Client, owner: str, expected: tuple[bool, bool]) -> None:
    """Until both services answer as `expected` (they read billing's facts on their own time)."""
    async with asyncio.timeout(FACTS_DEADLINE_S):
        while await refused(device, user, owner) != expected:
            await asyncio.sleep(0.1)


async def test_a_prepaid_app_that_runs_out_is_refused_and_a_top_up_restores_it(tmp_path: Path) -> None:
    settings = {
        "billing": {"group_id": f"billing-{uuid.uuid4()}", "rating_interval_s": 0.5},
        "relay": {"metering_interval_s": 0.5},
    }
    async with start_platform(tmp_path, *CALL_SERVICES, settings=settings) as platform:
        billing = platform.stub(billing_pb2_grpc.BillingServiceStub, ServiceName.BILLING)
        app = await create_app(platform.licence, "prepaid")
        await billing.SetAccount(
            billing_pb2.SetAccountRequest(biz_name=app.biz_name, mode="prepaid", unit="minutes")
        )

        connections, peers = Connections(app), Peers()
        try:
            owner = f"owner_{uuid.uuid4().hex[:8]}"
            device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=owner)
            alice = await connections.open(platform.ws_url)
            bob = await connections.open(platform.ws_url)
            carol = await connections.open(platform.ws_url)
            # A prepaid account without a balance is in arrears; the licence service and the room manager
            # hear it from billing's facts when they have read them, so the test waits for each state.
            await until_refused(device, carol, owner, (True, True))
            await billing.TopUp(
                billing_pb2.TopUpRequest(biz_name=app.biz_name, amount=QUOTA_MS, top_up_id="first")
            )
            # Served while the balance lasts (the owner is offline: -91021, not -15).
            await until_refused(device, carol, owner, (False, False))

            room = await alice.ok("create_room")
            await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
            feed, _ = await peers.publish(alice, video=True)
            await peers.subscribe(bob, feed, video=True)

            first_refused: dict[str, float] = {}
            async with asyncio.timeout(60):
                while len(first_refused) < 2:
                    call_refused, room_refused = await refused(device, carol, owner)
                    now = time.time()
                    if call_refused:
                        first_refused.setdefault("call", now)
                    if room_refused:
                        first_refused.setdefault("create_room", now)
                    await asyncio.sleep(0.1)
            account = await billing.GetAccount(billing_pb2.GetAccountRequest(biz_name=app.biz_name))
            assert account.in_arrears and account.balance <= 0
            reached_zero = _when_balance_reached_zero(account)
            delays = {what: round(at - reached_zero, 2) for what, at in first_refused.items()}
            print(f"refused after the balance reached zero: {delays} s")
            assert all(delay <= WITHIN_S for delay in delays.values()), delays

            await billing.TopUp(
                billing_pb2.TopUpRequest(biz_name=app.biz_name, amount=600_000, top_up_id="second")
            )
            await until_refused(device, carol, owner, (False, False))
            assert (await bob.call("join_room", room_id=room["room_id"], rtoken=room["rtoken"]))[
                "code"
            ] != -15
        finally:
            await peers.close()
            await connections.close()


def _when_balance_reached_zero(account: Any) -> float:
    """The time of the entry after which the running balance was zero or less for the first time."""
    balance = 0
    for entry in account.entries:
        balance += entry.amount
        if balance <= 0 and entry.kind == "usage":
            return entry.created_at.ToDatetime(tzinfo=UTC).timestamp()
    raise AssertionError(f"the balance never reached zero: {account}")
