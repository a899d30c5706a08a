"""A scripted real call through the platform (licence, room manager, relay, billing, gateway; aiortc
clients): alice and bob in a video call, bob leaves, alice publishes alone for a moment, bob comes back
and they talk audio only for a while, both disconnect. Billing's figures equal, in every dimension, what a
person computes from the facts the test recorded itself: sessions, stays, and the relay's ticks of each
publication and subscription."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from parley.relay.v1 import media_pb2, metering_pb2
from parley.rooms.v1 import events_pb2 as room_events

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.integration.billing.calls import CALL_SERVICES, Peers
from tests.integration.billing.generator import TIER_INDEX, TIER_LABELS
from tests.integration.billing.helpers import end_offsets, recording_ticks, wait_until_read
from tests.integration.licence_helpers import create_app
from tests.integration.protocol_client import Connections
from tests.testing import start_platform

pytestmark = pytest.mark.integration

EVENTS = [
    room_events.RoomCreated,
    room_events.RoomDestroyed,
    room_events.ParticipantJoined,
    room_events.ParticipantLeft,
    room_events.SessionOpened,
    room_events.SessionClosed,
]


def ms(stamp: Timestamp) -> int:
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def by_hand(events: list[Any]) -> dict[str, Any]:
    """The figures as a person works them out from the recorded facts of this one call."""
    ticks = [e for e in events if isinstance(e, metering_pb2.MeteringTick)]
    streams: dict[str, list[metering_pb2.MeteringTick]] = {}
    for tick in ticks:
        streams.setdefault(tick.stream_id, []).append(tick)
    published = subscribed = 0
    call = [0] * 5
    for pieces in streams.values():
        # Its tracks run side by side from the first frame to the end: the stream lasts from its first
        # tick's start to its last tick's end.
        span = max(ms(t.end_time) for t in pieces) - min(ms(t.start_time) for t in pieces)
        if pieces[0].role == metering_pb2.STREAM_ROLE_PUBLICATION:
            published += span
            continue
        subscribed += span
        # One subscription at a time per user here: its video ticks in their tiers, the rest audio.
        video = [t for t in pieces if t.kind == media_pb2.MEDIA_KIND_VIDEO]
        for tick in video:
            call[TIER_INDEX[tick.tier]] += ms(tick.end_time) - ms(tick.start_time)
        call[0] += span - sum(ms(t.end_time) - ms(t.start_time) for t in video)
    sessions = [e for e in events if isinstance(e, room_events.SessionClosed)]
    joined = {e.uid for e in events if isinstance(e, room_events.ParticipantJoined)}
    return {
        "callMs": dict(zip(TIER_LABELS, call, strict=True)),
        "onlineMs": sum(ms(s.closed_at) - ms(s.opened_at) for s in sessions),
        "publishedStreamMs": published,
        "subscribedStreamMs": subscribed,
        "rooms": sum(isinstance(e, room_events.RoomCreated) for e in events),
        # One room; both users were connected and in it together.
        "peakRooms": 1,
        "onlineUsers": len({s.uid for s in sessions}),
        "callUsers": len(joined),
        "peakOnlineUsers": 2,
        "peakCallUsers": 2,
        "billableMinutes": -(-sum(call) // 60_000),
    }


async def until_received(
    ticks: list[metering_pb2.MeteringTick],
    uid: str,
    kind: int,
    *,
    feed_other_than: str = "",
    timeout_s: float = 60,
) -> None:
    """Until the relay has metered media of `kind` received by `uid` (a subscription tick), on a feed other
    than `feed_other_than`."""
    async with asyncio.timeout(timeout_s):
        while not any(
            e.uid == uid
            and e.role == metering_pb2.STREAM_ROLE_SUBSCRIPTION
            and e.kind == kind
            and e.feed_id != feed_other_than
            for e in ticks
        ):
            await asyncio.sleep(0.1)


async def test_a_real_call_is_counted_as_a_person_counts_it(tmp_path: Path) -> None:
    settings = {
        "billing": {"group_id": f"billing-{uuid.uuid4()}"},
        "relay": {"metering_interval_s": 1.0},
        "rooms": {"empty_room_grace_s": 1.0},
    }
    async with (
        start_platform(tmp_path, *CALL_SERVICES, settings=settings) as platform,
        AsyncExitStack() as stack,
    ):
        app = await create_app(platform.licence, "billing-call")
        facts = await platform.record(
            [Topic.ROOM, Topic.SESSION], EVENTS, key=lambda event: str(event.biz_name)
        )
        recorder = await stack.enter_async_context(recording_ticks(platform.kafka, app.biz_name))
        connections, peers = Connections(app), Peers()
        try:
            alice = await connections.open(platform.ws_url)
            bob = await connections.open(platform.ws_url)
            room = await alice.ok("create_room")
            await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
            camera, _ = await peers.publish(alice, video=True)
            await peers.subscribe(bob, camera, video=True)
            # Media flows once ICE and DTLS are up (seconds on a busy machine): the call counts from there.
            await until_received(recorder.ticks, bob.uid, media_pb2.MEDIA_KIND_VIDEO)
            await asyncio.sleep(3)
            await bob.ok("leave_room", room_id=room["room_id"])
            await asyncio.sleep(1.5)
            await alice.ok("unpublish", feed_id=camera)
            await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
            microphone, _ = await peers.publish(alice, video=False)
            await peers.subscribe(bob, microphone, video=False)
            await until_received(recorder.ticks, bob.uid, media_pb2.MEDIA_KIND_AUDIO, feed_other_than=camera)
            await asyncio.sleep(2)
            await bob.ok("leave_room", room_id=room["room_id"])
            await alice.ok("leave_room", room_id=room["room_id"])
            for client in (alice, bob):
                await client.call("disconnect")
        finally:
            await peers.close()
            await connections.close()
        await facts.wait_for(app.biz_name, "SessionClosed", uid=alice.uid)
        await facts.wait_for(app.biz_name, "SessionClosed", uid=bob.uid)
        await facts.wait_for(app.biz_name, "RoomDestroyed")
        billing_url = platform[ServiceName.BILLING].settings.database_url_for(ServiceName.BILLING)
        ends = await end_offsets(platform.kafka)
        await wait_until_read(billing_url, ends, timeout_s=60)
        await recorder.until_read(ends)

        expected = by_hand([*recorder.ticks, *facts.events(app.biz_name)])
        # The script: video at 540P (aiortc's 640x480), audio only later, and every dimension non-zero.
        assert expected["callMs"]["540P"] > 2000 and expected["callMs"]["audio"] > 1500, expected
        async with httpx.AsyncClient(base_url=platform.http_url, timeout=30) as http:
            overview = (
                await http.get(f"/v1/apps/{app.biz_name}/usage/overview", params={"range": "today"})
            ).json()
        assert {
            key: value for key, value in overview.items() if key not in ("bizName", "start", "end")
        } == expected
