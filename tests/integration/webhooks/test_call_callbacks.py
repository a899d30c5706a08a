"""A scripted call over protocol v1 on the whole platform (licence, room manager, relay, recorder, gateway,
webhook dispatcher): its room-status and recording callbacks reach the app's real HTTP receiver with the
fields of seed 002 section 5.1.2, in order, each signed so that `standardwebhooks` verifies it.

The operator's view goes through the gateway's HTTP routes: the secret, the endpoints, the deliveries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import events_pb2 as room_events
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.core.config import ServiceName
from services.core.media.gathering import gathering_on
from services.core.topics import Topic
from tests.integration.protocol_client import Connections
from tests.integration.webhooks.conftest import LOOPBACK_ALLOWED, create_app_with_callbacks
from tests.integration.webhooks.receiver import Receiver
from tests.testing import start_platform

pytestmark = pytest.mark.integration

ROOM_FIELDS = {"bizRequestId", "uid", "bizName", "appId", "workspaceId", "roomId", "eventCode", "time"}
RECORD_FIELDS = {"bizRequestId", "bizName", "appId", "workspaceId", "roomId", "recordId", "eventCode"}


async def publish_audio(client: Any) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    offer = await pc.createOffer()
    with gathering_on(["127.0.0.1"]):
        await pc.setLocalDescription(offer)
    published = await client.ok("publish", media_type=2, tag="mic", sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=published["sdp"], type="answer"))
    return pc


async def wait_for_audio(client: Any, record_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            files = (await client.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if files and files[0]["audio_packets"] >= 50:
                return
            await asyncio.sleep(0.2)


async def test_a_calls_room_and_recording_callbacks_reach_the_app_signed_with_the_seeds_fields(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    await receiver.start()
    settings = {**LOOPBACK_ALLOWED, "rooms": {"empty_room_grace_s": 1.0, "session_grace_s": 2.0}}
    # A broker of its own: on the session's broker the dispatcher would first read every fact the earlier
    # tests left on the topics it consumes from their start.
    async with start_platform(
        tmp_path,
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.RECORDER,
        ServiceName.WEBHOOKS,
        ServiceName.GATEWAY,
        settings=settings,
    ) as platform:
        await platform.consumers_joined(ServiceName.WEBHOOKS, ServiceName.RECORDER)
        app = await create_app_with_callbacks(
            platform.licence,
            "callbacks",
            room_status_url=f"{receiver.url}/rooms",
            record_url=f"{receiver.url}/records",
        )
        facts = await platform.record(
            (Topic.ROOM, Topic.RECORDING), [*ROOM_TYPES, recorder_pb2.RecordingEvent], timeout_s=30
        )
        connections = Connections(app, response_timeout_s=30, push_timeout_s=30)
        pc = None
        try:
            alice = await connections.open(platform.ws_url, "alice")
            bob = await connections.open(platform.ws_url, "bob")
            room = await alice.ok("create_room")
            room_id = room["room_id"]
            await bob.ok("join_room", room_id=room_id, rtoken=room["rtoken"])
            pc = await publish_audio(alice)
            record_id = (await bob.ok("start_record", room_id=room_id))["record_id"]
            await wait_for_audio(bob, record_id)
            await alice.ok("stop_record", record_id=record_id)
            await facts.wait_for(record_id, "RecordingEvent", event_code=99)
            await bob.ok("leave_room")
            await alice.ok("leave_room")
            await facts.wait_for(room_id, "RoomDestroyed")
        finally:
            if pc is not None:
                await pc.close()
            await connections.close()

        room_facts = facts.of(room_id)
        record_facts = facts.of(record_id)
        expected_ids = {envelope.id for _, envelope in room_facts + record_facts}
        await receiver.wait_for(lambda r: r.acknowledged_ids() >= expected_ids, timeout_s=30)

        http = httpx.AsyncClient(base_url=platform.http_url, timeout=10)
        secret = (await http.get(f"/v1/apps/{app.biz_name}/webhook-secret")).json()["secret"]
        assert secret.startswith("whsec_")
        by_id = {r.headers["webhook-id"]: r for r in receiver.requests}
        assert len(receiver.requests) == len(expected_ids), "each callback once, none other"

        # Room status: create, two joins, two leaves, destroy, in the order they happened.
        room_bodies = [
            Webhook(secret).verify(by_id[envelope.id].body, by_id[envelope.id].headers)
            for _, envelope in room_facts
        ]
        assert [b["eventCode"] for b in room_bodies] == [1, 2, 2, 3, 3, 4]
        assert [b["uid"] for b in room_bodies] == ["alice", "alice", "bob", "bob", "alice", ""]
        for (event, envelope), body in zip(room_facts, room_bodies, strict=True):
            assert ROOM_FIELDS <= set(body)
            assert body["bizRequestId"] == envelope.id
            assert (body["bizName"], body["appId"], body["workspaceId"], body["roomId"]) == (
                app.biz_name,
                app.app_id,
                app.workspace_id,
                room_id,
            )
            assert by_id[envelope.id].path == "/rooms"
            stamp = {
                "RoomCreated": "created_at",
                "ParticipantJoined": "joined_at",
                "ParticipantLeft": "left_at",
            }
            assert (
                body["time"]
                == getattr(event, stamp.get(type(event).__name__, "destroyed_at")).ToMilliseconds()
            )
        room_arrivals = [r.headers["webhook-id"] for r in receiver.requests if r.path == "/rooms"]
        assert room_arrivals == [envelope.id for _, envelope in room_facts]

        # Recording: initialised, the feed's file, ended, the result; the seed's recordResult with 99.
        record_bodies = [
            Webhook(secret).verify(by_id[e.id].body, by_id[e.id].headers) for _, e in record_facts
        ]
        codes = [b["eventCode"] for b in record_bodies]
        assert codes[0] == 10 and codes[-1] == 99 and 11 in codes and 0 in codes
        for body in record_bodies:
            assert RECORD_FIELDS <= set(body)
            assert (body["roomId"], body["recordId"], body["appId"]) == (room_id, record_id, app.app_id)
        result = record_bodies[-1]["recordResult"]
        # The seed's default recording is one composite file (a picture and the mixed sound), even of an
        # audio-only call: mediaType 0 (docs/recording.md).
        assert result["status"] == 2 and result["fileType"] == 1 and result["mediaType"] == 0
        assert result["filePath"] and result["recordStartTime"] > 0
        assert all("recordResult" not in b for b in record_bodies[:-1])

        # Metrics: every callback delivered at the first attempt, its latency from the fact observed. An
        # outcome is counted once it is saved, which can come a moment after the receiver's answer.
        registry = platform["webhooks"].runtime.metrics.registry
        async with asyncio.timeout(10):
            while registry.get_sample_value(
                "parley_webhook_deliveries_total", {"outcome": "delivered"}
            ) != len(expected_ids):
                await asyncio.sleep(0.05)
        for kind, count in (("room_status", len(room_facts)), ("record", len(record_facts))):
            seen = registry.get_sample_value("parley_webhook_event_to_delivery_seconds_count", {"kind": kind})
            assert seen == count

        # A wrong secret does not verify.
        other = "whsec_" + "A" * 43 + "="
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(by_id[room_facts[0][1].id].body, by_id[room_facts[0][1].id].headers)

        # The operator's view.
        endpoints = (await http.get(f"/v1/apps/{app.biz_name}/webhook-endpoints")).json()
        assert {(e["kind"], e["url"], e["enabled"]) for e in endpoints} == {
            ("room_status", f"{receiver.url}/rooms", True),
            ("record", f"{receiver.url}/records", True),
        }
        deliveries = (await http.get(f"/v1/apps/{app.biz_name}/deliveries", params={"limit": 100})).json()
        assert {d["bizRequestId"] for d in deliveries} == expected_ids
        assert {(d["status"], d["attempts"], d["httpStatus"]) for d in deliveries} == {("delivered", 1, 200)}
        detail = (await http.get(f"/v1/apps/{app.biz_name}/deliveries/{deliveries[0]['deliveryId']}")).json()
        assert detail["attemptLog"][0]["outcome"] == "delivered"
        await http.aclose()
    await receiver.stop()


ROOM_TYPES = (
    room_events.RoomCreated,
    room_events.ParticipantJoined,
    room_events.ParticipantLeft,
    room_events.RoomDestroyed,
)
