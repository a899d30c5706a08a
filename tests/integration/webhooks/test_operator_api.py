"""What an operator does with webhooks through the gateway's HTTP routes and the CLI: CloudEvents endpoints
for any event type, dead letters and redelivery, 410 disabling an endpoint, secret rotation (old and new
signing side by side), test events, outcome facts on parley.webhook.v1, and `parley webhooks listen`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from parley.rooms.v1 import events_pb2 as room_events
from parley.webhooks.v1 import events_pb2 as webhook_events
from standardwebhooks.webhooks import Webhook

from services.core.config import ServiceName
from services.core.embedded_broker import free_port
from services.core.events import EventPublisher
from services.core.topics import Topic
from tests.integration.webhooks.conftest import (
    LOOPBACK_ALLOWED,
    create_app_with_callbacks,
    room_facts_on,
)
from tests.integration.webhooks.receiver import Receiver
from tests.testing import start_platform

pytestmark = pytest.mark.integration

PARLEY = [sys.executable, "-m", "services.cli.main"]
SETTINGS = {"webhooks": {**LOOPBACK_ALLOWED["webhooks"], "retry_schedule": "0,0.2,0.2"}}


async def until(check: Any, timeout_s: float = 20) -> Any:
    async with asyncio.timeout(timeout_s):
        while not (value := await check()):
            await asyncio.sleep(0.1)
        return value


def parley(*args: str) -> Any:
    done = subprocess.run([*PARLEY, *args], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


async def test_endpoints_dead_letters_redelivery_rotation_and_410_through_the_gateway(
    tmp_path: Path,
) -> None:
    seed_receiver, cloud_receiver = Receiver(mode="500"), Receiver()
    await seed_receiver.start()
    await cloud_receiver.start()
    # A broker of its own: on the session's broker the dispatcher would first read every fact earlier
    # tests left on its topics.
    async with (
        start_platform(
            tmp_path, ServiceName.LICENCE, ServiceName.WEBHOOKS, ServiceName.GATEWAY, settings=SETTINGS
        ) as platform,
        room_facts_on(platform.kafka) as room_facts,
    ):
        await platform.consumers_joined(ServiceName.WEBHOOKS)
        app = await create_app_with_callbacks(
            platform.licence, "operators", room_status_url=seed_receiver.url
        )
        outcomes = await platform.record(
            [Topic.WEBHOOK], [webhook_events.DeliveryAttempted], key=lambda event: event.biz_name
        )
        http = httpx.AsyncClient(base_url=f"{platform.http_url}/v1/apps/{app.biz_name}", timeout=10)
        calls = EventPublisher(platform["webhooks"].runtime.broker, source="//parley/rooms")  # type: ignore[union-attr]

        refused = await http.post(
            "/webhook-endpoints", json={"url": cloud_receiver.url, "eventTypes": ["nope.v1.X"]}
        )
        assert refused.status_code == 400 and refused.json()["reason"] == "INVALID_ARGUMENT"
        loop = await http.post(
            "/webhook-endpoints",
            json={"url": cloud_receiver.url, "eventTypes": ["parley.webhooks.v1.DeliveryAttempted"]},
        )
        assert loop.status_code == 400
        created = await http.post(
            "/webhook-endpoints",
            json={"url": cloud_receiver.url, "eventTypes": ["parley.rooms.v1.CallEnded"]},
        )
        assert created.status_code == 201, created.text
        endpoint_id = created.json()["endpointId"]

        # A CloudEvents endpoint gets the event type it subscribed to, signed; a seed receiver answering 500
        # has its callback dead-lettered after the schedule (3 attempts here).
        ended = room_events.CallEnded(
            call_id="call-1", biz_name=app.biz_name, reason="hang_up", keep_time_ms=1500
        )
        call_event_id = await calls.publish(Topic.CALL, ended, key="call-1")
        room_event_id = await room_facts.created(app.biz_name, "room-op", "alice")
        await cloud_receiver.wait_for(lambda r: len(r.acknowledged()) == 1)
        secret = (await http.get("/webhook-secret")).json()["secret"]
        cloud = cloud_receiver.requests[0]
        assert cloud.headers["content-type"] == "application/json"
        event = Webhook(secret).verify(cloud.body, cloud.headers)
        assert (event["specversion"], event["id"], event["type"]) == (
            "1.0",
            call_event_id,
            "parley.rooms.v1.CallEnded",
        )
        assert event["data"] == {
            "callId": "call-1",
            "bizName": app.biz_name,
            "reason": "hang_up",
            "keepTimeMs": "1500",
        }

        async def dead() -> list[dict[str, Any]]:
            return list((await http.get("/deliveries", params={"status": "dead"})).json())

        (dead_letter,) = await until(dead)
        assert (dead_letter["bizRequestId"], dead_letter["attempts"]) == (room_event_id, 3)
        assert dead_letter["lastError"] == "HTTP 500" and dead_letter["httpStatus"] == 500
        assert len(seed_receiver.requests) == 3

        # Redelivered once the receiver is fixed.
        seed_receiver.mode = "ok"
        assert (await http.post("/deliveries/redeliver-failed")).json() == {"count": 1}
        await seed_receiver.wait_for(lambda r: len(r.acknowledged()) == 1)
        assert seed_receiver.acknowledged()[0].headers["webhook-id"] == room_event_id

        # Rotation: the old secret keeps signing beside the new one.
        rotated = (await http.post("/webhook-secret/rotate")).json()
        assert rotated["secret"] != secret and rotated["previousValidUntil"]
        assert (await http.get("/webhook-secret")).json()["secret"] == rotated["secret"]
        test = await http.post("/webhook-test", json={"endpointId": f"{app.biz_name}.room_status"})
        assert test.status_code == 202, test.text
        await seed_receiver.wait_for(lambda r: len(r.acknowledged()) == 2)
        tested = seed_receiver.acknowledged()[1]
        assert len(tested.headers["webhook-signature"].split()) == 2
        for key in (secret, rotated["secret"]):
            assert Webhook(key).verify(tested.body, tested.headers)["test"] is True

        # 410 disables the endpoint; events for it then wait for an operator to enable it again.
        cloud_receiver.mode = "410"
        await calls.publish(Topic.CALL, ended, key="call-2")

        async def disabled() -> bool:
            endpoints = (await http.get("/webhook-endpoints")).json()
            return any(e["endpointId"] == endpoint_id and not e["enabled"] for e in endpoints)

        await until(disabled)
        endpoints = {e["endpointId"]: e for e in (await http.get("/webhook-endpoints")).json()}
        assert "HTTP 410" in endpoints[endpoint_id]["disabledReason"]
        assert endpoints[f"{app.biz_name}.room_status"]["url"] == seed_receiver.url
        enabled = await http.patch(f"/webhook-endpoints/{endpoint_id}", json={"enabled": True})
        assert enabled.json()["enabled"] is True

        # Every attempt's outcome is a fact.
        await until(lambda: _counted(outcomes.events(app.biz_name), 7))
        seen = {(e.endpoint_id, e.outcome) for e in outcomes.events(app.biz_name)}
        assert {
            (endpoint_id, "delivered"),
            (endpoint_id, "endpoint_disabled"),
            (f"{app.biz_name}.room_status", "retrying"),
            (f"{app.biz_name}.room_status", "dead_lettered"),
            (f"{app.biz_name}.room_status", "delivered"),
        } <= seen

        # The CLI: the same deliveries, and a local receiver that verifies what it gets.
        gateway = ["--url", platform.http_url]
        listed = await asyncio.to_thread(
            parley, "webhooks", "deliveries", "--biz-name", app.biz_name, "--json", *gateway
        )
        assert {d["bizRequestId"] for d in listed} >= {room_event_id, call_event_id}
        shown = await asyncio.to_thread(parley, "app", "webhook-secret", "--biz-name", app.biz_name, *gateway)
        assert shown["secret"] == rotated["secret"]
        await _listen_receives_a_signed_test_event(http, rotated["secret"], gateway, app.biz_name)
        await http.aclose()
    await seed_receiver.stop()
    await cloud_receiver.stop()


async def _counted(events: list[Any], count: int) -> bool:
    return len(events) >= count


async def _listen_receives_a_signed_test_event(
    http: httpx.AsyncClient, secret: str, gateway: list[str], biz_name: str
) -> None:
    port = free_port()
    listener = await asyncio.create_subprocess_exec(
        *PARLEY,
        "webhooks",
        "listen",
        "--port",
        str(port),
        "--secret",
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    async with httpx.AsyncClient() as probe:
                        await probe.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
        endpoint = (
            await http.post(
                "/webhook-endpoints",
                json={"url": f"http://127.0.0.1:{port}/", "eventTypes": ["parley.rooms.v1.CallEnded"]},
            )
        ).json()
        sent = await asyncio.to_thread(
            parley,
            "webhooks",
            "test",
            "--biz-name",
            biz_name,
            "--endpoint-id",
            endpoint["endpointId"],
            *gateway,
        )

        async def delivered() -> bool:
            detail = (await http.get(f"/deliveries/{sent['deliveryId']}")).json()
            return bool(detail["status"] == "delivered")

        await until(delivered)
    finally:
        listener.terminate()
        output = (await asyncio.wait_for(listener.communicate(), 10))[0].decode()
    assert f"webhook-id={sent['bizRequestId']} signature ok" in output
    assert '"type": "parley.webhooks.v1.TestEvent"' in output
