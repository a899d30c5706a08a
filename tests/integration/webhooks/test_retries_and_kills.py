"""Deliveries survive everything a receiver and the dispatcher's own process can do to them: a receiver
that is down, then answers 500, then answers `code` != 0, then answers right, gets every event
acknowledged, each bizRequestId acknowledged once, in order per room; and the same while the dispatcher
is SIGKILLed 20 times (runs about a minute: each restart is a new Python process)."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from parley.webhooks.v1 import webhooks_pb2
from parley.webhooks.v1.webhooks_pb2_grpc import WebhookServiceStub
from standardwebhooks.webhooks import Webhook

from services.core.config import ServiceName
from tests.integration.webhooks.conftest import (
    FAST_RETRIES,
    LOOPBACK_ALLOWED,
    check_order,
    create_app_with_callbacks,
    room_facts_on,
)
from tests.integration.webhooks.receiver import Receiver
from tests.testing import Instance, start_platform

pytestmark = pytest.mark.integration

ROOMS = 6
EVENTS_PER_ROOM = 12
KILLS = 20


async def test_a_failing_receiver_gets_every_event_in_order_once_it_answers_right(tmp_path: Path) -> None:
    receiver = Receiver()  # down: not started
    settings = {"webhooks": {**LOOPBACK_ALLOWED["webhooks"], **FAST_RETRIES}}
    # A broker of its own: on the session's broker the dispatcher would first read every fact earlier
    # tests left on its topics.
    async with (
        start_platform(tmp_path, ServiceName.LICENCE, ServiceName.WEBHOOKS, settings=settings) as platform,
        room_facts_on(platform.kafka) as room_facts,
    ):
        await platform.consumers_joined(ServiceName.WEBHOOKS)
        app = await create_app_with_callbacks(
            platform.licence, "retries", room_status_url=f"{receiver.url}/rooms"
        )
        expected: dict[str, list[str]] = {f"room-{uuid.uuid4().hex[:6]}": [] for _ in range(3)}
        for index in range(4):
            for room, ids in expected.items():
                ids.append(await room_facts.joined(app.biz_name, room, f"u{index}"))
        webhooks = WebhookServiceStub(platform.channel(ServiceName.WEBHOOKS))

        async def failing_attempts() -> int:
            listed = await webhooks.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(biz_name=app.biz_name))
            return sum(d.attempt for d in listed.deliveries)

        async def wait_for_failed_attempts(count: int) -> None:
            async with asyncio.timeout(20):
                while await failing_attempts() < count:
                    await asyncio.sleep(0.1)

        await wait_for_failed_attempts(3)  # refused: down
        receiver.mode = "500"
        await receiver.start()
        await receiver.wait_for(lambda r: len(r.requests) >= 3)
        receiver.mode = "code"
        await receiver.wait_for(lambda r: sum(1 for q in r.requests if q.json().get("eventCode") == 2) >= 6)
        receiver.mode = "ok"
        await receiver.wait_for(lambda r: len(r.acknowledged()) >= 12)
        await receiver.stop()

        assert check_order(receiver, expected) == 0
        first = receiver.requests[0]
        assert first.path == "/rooms"
        # The last answer's outcome is committed after the receiver answered it: wait for that commit.
        async with asyncio.timeout(10):
            while True:
                listed = await webhooks.ListDeliveries(
                    webhooks_pb2.ListDeliveriesRequest(biz_name=app.biz_name)
                )
                if {d.status for d in listed.deliveries} == {"delivered"}:
                    break
                await asyncio.sleep(0.05)
        detail = await webhooks.GetDelivery(
            webhooks_pb2.GetDeliveryRequest(
                biz_name=app.biz_name, delivery_id=listed.deliveries[-1].delivery_id
            )
        )
        outcomes = [a.outcome for a in detail.attempts]
        assert outcomes[-1] == "delivered" and set(outcomes[:-1]) == {"retrying"}
        errors = {a.error.split(":")[0] for a in detail.attempts[:-1]}
        assert {"connect failed", "HTTP 500", "the answer's code is 1, not 0"} <= errors


@pytest.mark.system
async def test_sigkilling_the_dispatcher_20_times_loses_and_reorders_nothing(tmp_path: Path) -> None:
    receiver = Receiver(delay_s=0.02)
    settings = {"webhooks": {**LOOPBACK_ALLOWED["webhooks"], **FAST_RETRIES}}
    rng = random.Random(14)
    async with (
        start_platform(
            tmp_path, ServiceName.LICENCE, Instance(ServiceName.WEBHOOKS, process=True), settings=settings
        ) as platform,
        room_facts_on(platform.kafka) as room_facts,
    ):
        app = await create_app_with_callbacks(platform.licence, "kills", room_status_url=receiver.url)
        rooms = [f"room-{uuid.uuid4().hex[:6]}" for _ in range(ROOMS)]
        expected: dict[str, list[str]] = {room: [] for room in rooms}

        async def publish(count: int) -> None:
            for _ in range(count):
                for room in rooms:
                    expected[room].append(
                        await room_facts.joined(app.biz_name, room, f"u{len(expected[room])}")
                    )

        async def kill_and_restart() -> None:
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            await platform.kill(ServiceName.WEBHOOKS)
            await platform.restart(ServiceName.WEBHOOKS)

        # Receiver phases over the kills: down, 500, code != 0, right; facts keep coming meanwhile.
        phases: list[tuple[str | None, int]] = [(None, 4), ("500", 4), ("code", 4), ("ok", 8)]
        per_batch = EVENTS_PER_ROOM // 4
        killed = 0
        for mode, kills in phases:
            if mode is not None:
                receiver.mode = mode
                if receiver._server is None:
                    await receiver.start()
            await publish(per_batch)
            for _ in range(kills):
                await kill_and_restart()
                killed += 1
        assert killed == KILLS
        await receiver.wait_for(lambda r: len(r.acknowledged_ids()) == ROOMS * EVENTS_PER_ROOM, timeout_s=90)
        await asyncio.sleep(1.0)  # anything wrongly sent again would arrive now
        await receiver.stop()

        repeated = check_order(receiver, expected)
        assert repeated <= KILLS, f"{repeated} acknowledgements repeated, more than one per kill"
        # The dispatcher saved each delivery as delivered exactly once.
        webhooks = WebhookServiceStub(platform.channel(ServiceName.WEBHOOKS))
        listed = await webhooks.ListDeliveries(
            webhooks_pb2.ListDeliveriesRequest(biz_name=app.biz_name, limit=1000)
        )
        assert sorted(d.biz_request_id for d in listed.deliveries) == sorted(receiver.acknowledged_ids())
        assert {d.status for d in listed.deliveries} == {"delivered"}
        for delivery in listed.deliveries[:10]:
            detail = await webhooks.GetDelivery(
                webhooks_pb2.GetDeliveryRequest(biz_name=app.biz_name, delivery_id=delivery.delivery_id)
            )
            assert [a.outcome for a in detail.attempts].count("delivered") == 1
        # Seed body on every one, signed with the app's secret.
        secret = (await webhooks.GetSecret(webhooks_pb2.GetSecretRequest(biz_name=app.biz_name))).secret
        for request in receiver.acknowledged():
            body: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
            assert body["bizRequestId"] == request.headers["webhook-id"]
            assert (body["bizName"], body["appId"], body["workspaceId"]) == (
                app.biz_name,
                app.app_id,
                app.workspace_id,
            )
            assert body["eventCode"] == 2
