"""Every tier as two replicas (issue #16): one broker, PostgreSQL and Redis, two gateways, two room managers
on the Redis store (one leads, one stands by), two relays, two billing and two webhook processes. One script
of calls runs twice, once as a baseline and once while one process of each kind is SIGKILLed, one at a
time, mid-call:

- two rooms with real aiortc audio through the relays (their peers on different gateways), one per relay;
- a device calling a phone user with a time limit, another ringing until its ring timeout.

After each kill the calls whose relay survived still receive RTP. The room on the killed relay is told
with the seed's codes (5009 to its publisher, 5006 to its subscriber: docs/protocol.md, "A relay that
dies") and is set up again on the other relay. The ring timeout and the time limit armed by the killed room
manager still fire; nobody is left in a room who is not connected; a room made afterwards lands on the live
relay. The app's webhook callbacks (per distinct bizRequestId, at a real HTTP receiver) and billing's
counts are those of the baseline, and billing's stream time is exactly what the relays' ticks say."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiortc import RTCPeerConnection
from parley.billing.v1.billing_pb2_grpc import BillingServiceStub
from parley.rooms.v1 import rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from tests.integration.billing.calls import Peers
from tests.integration.billing.helpers import (
    end_offsets,
    overview,
    recording_ticks,
    stream_ms,
    wait_until_read,
)
from tests.integration.licence_helpers import App
from tests.integration.media_call import packets_received
from tests.integration.protocol_client import Client, Connections
from tests.integration.rooms.test_rooms_survive_restart import on_redis
from tests.integration.webhooks.conftest import FAST_RETRIES, LOOPBACK_ALLOWED, create_app_with_callbacks
from tests.integration.webhooks.receiver import Receiver
from tests.postgres import fresh_database_url
from tests.redis_keys import fresh_prefix
from tests.testing import Instance, Platform, start_platform

pytestmark = pytest.mark.system

ROOM_LEASE_S = 1.0
SESSION_GRACE_S = 3.0
RELAY_LEASE_S = 3.0
# Started just before the room manager is killed: long enough to outlast the kill and the takeover.
RING_TIMEOUT_S = 8.0
# From the answer; long enough that the takeover is long over when it fires.
TIME_LIMIT_S = 30
RULES = {
    "room_lease_s": ROOM_LEASE_S,
    "session_grace_s": SESSION_GRACE_S,
    "gateway_lease_s": 3.0,
    "relay_lease_s": RELAY_LEASE_S,
    "call_ring_timeout_s": RING_TIMEOUT_S,
    "empty_room_grace_s": 2.0,
}
SETTINGS = {
    "relay": {"metering_interval_s": 1.0},
    "webhooks": {**LOOPBACK_ALLOWED["webhooks"], **FAST_RETRIES, "attempt_timeout_s": 2.0, "lease_s": 6.0},
}
# What billing counts that does not depend on how long anything took.
COUNTS = ("rooms", "peakRooms", "onlineUsers", "peakOnlineUsers", "callUsers", "peakCallUsers")


@dataclass
class Outcome:
    """What one run of the script left: webhook callbacks by (room, event, who, exit type), once per
    bizRequestId; billing's counts; billing's stream time beside the ticks' own."""

    callbacks: Counter[tuple[str, int, str, int]]
    billing_counts: dict[str, object]
    billed_stream_ms: dict[str, int]
    ticked_stream_ms: dict[str, int]
    repeated_callbacks: int


@dataclass
class Script:
    platform: Platform
    app: App
    connections: Connections
    peers: Peers
    kills: bool
    # Names the script gives uids and rooms, so that two runs' callbacks compare.
    names: dict[str, str] = field(default_factory=dict)

    async def kill(self, key: str) -> None:
        if self.kills:
            await self.platform.kill(key)

    async def user(self, name: str, gateway: int) -> Client:
        client = await self.connections.open(self.platform.gateways[gateway].ws_url)
        self.names[client.uid] = name
        return client

    async def device(self, name: str, authorised_user: Client) -> Client:
        """A device connected to the first gateway, `authorised_user` authorised for it."""
        bell = await self.connections.open_device(
            self.platform.gateways[0].ws_url, self.platform.licence, authorised_user=authorised_user.uid
        )
        self.names[bell.uid] = name
        return bell

    async def resumed(self, client: Client, gateway: int) -> Client:
        """`client` again on another gateway, in the session it had (its own gateway was killed)."""
        again = await self.connections.open(
            self.platform.gateways[gateway].ws_url, client.uid, connect_as=False
        )
        data = await again.ok("connect", session_id=client.session_id, **self.app.connect_params(client.uid))
        assert data["resumed"] is True, data
        again.session_id = client.session_id
        return again


@dataclass
class AudioRoom:
    name: str
    room_id: str
    rtoken: str
    publisher: Client
    subscriber: Client
    feed_id: str = ""
    receiving: RTCPeerConnection | None = None


async def audio_room(script: Script, name: str, publisher: Client, subscriber: Client) -> AudioRoom:
    created = await publisher.ok("create_room")
    script.names[created["room_id"]] = name
    await subscriber.ok("join_room", room_id=created["room_id"], rtoken=created["rtoken"])
    room = AudioRoom(name, created["room_id"], created["rtoken"], publisher, subscriber)
    await publish_and_receive(script, room)
    return room


async def publish_and_receive(script: Script, room: AudioRoom) -> None:
    room.feed_id, _ = await script.peers.publish(room.publisher, video=False)
    room.receiving = await script.peers.subscribe(room.subscriber, room.feed_id, video=False)
    await media_flows(room)


async def media_flows(room: AudioRoom, timeout_s: float = 30) -> None:
    """The room's subscriber receives more RTP than it had (audio comes 50 packets a second)."""
    assert room.receiving is not None
    before = await packets_received(room.receiving)
    async with asyncio.timeout(timeout_s):
        while await packets_received(room.receiving) < before + 25:
            await asyncio.sleep(0.2)


async def all_flow(rooms: list[AudioRoom]) -> None:
    await asyncio.gather(*(media_flows(room) for room in rooms))


def rooms_target(platform: Platform) -> str:
    """A gRPC target naming both room managers: whichever leads answers."""
    return f"ipv4:{platform['rooms'].grpc_address},{platform['rooms-2'].grpc_address}"


async def relay_of(rooms: RoomServiceStub, platform: Platform, room_id: str) -> str:
    """The key of the relay process serving the room."""
    address = (await rooms.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=10)).relay_address
    return next(key for key in ("relay", "relay-2") if platform[key].grpc_address == address)


async def participants(rooms: RoomServiceStub, room_id: str) -> list[str]:
    room = await rooms.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=10)
    return sorted(p.uid for p in room.participants)


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.2)


@asynccontextmanager
async def replicated_platform(data_dir: Path) -> AsyncIterator[Platform]:
    await asyncio.to_thread(data_dir.mkdir)
    async with (
        fresh_prefix() as (_, prefix),
        fresh_database_url("replicas") as database_url,
    ):
        settings = {**SETTINGS, **on_redis(prefix, **RULES)}
        async with start_platform(
            data_dir,
            ServiceName.LICENCE,
            Instance(ServiceName.ROOMS, process=True),
            settings=settings,
            database_url=database_url,
        ) as platform:
            # Started once the first leads, so that it stands by.
            await platform.start(Instance(ServiceName.ROOMS, process=True, standby=True))
            either = {"grpc": {"rooms": rooms_target(platform)}}
            await platform.start(
                *(Instance(ServiceName.GATEWAY, process=True, settings=either) for _ in range(2)),
                *(
                    Instance(ServiceName.RELAY, process=True, settings={**either, "relay": {"relay_id": key}})
                    for key in ("relay-a", "relay-b")
                ),
                *(Instance(ServiceName.BILLING, process=True, settings=either) for _ in range(2)),
                *(Instance(ServiceName.WEBHOOKS, process=True, settings=either) for _ in range(2)),
            )
            # Rooms go to the configured relay until relays register: both must have, for a room on each.
            await until(lambda: registered(platform), timeout_s=30)
            yield platform


async def registered(platform: Platform) -> bool:
    logs = [platform[key].log_path for key in ("relay", "relay-2")]
    texts = await asyncio.gather(*(asyncio.to_thread(log.read_text) for log in logs if log is not None))
    return all("relay_registered" in text for text in texts)


async def run_script(data_dir: Path, *, kills: bool) -> Outcome:
    receiver = Receiver()
    await receiver.start()
    try:
        async with replicated_platform(data_dir) as platform, AsyncExitStack() as stack:
            app = await create_app_with_callbacks(platform.licence, "replicas", room_status_url=receiver.url)
            ticks = await stack.enter_async_context(recording_ticks(platform.kafka, app.biz_name))
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(rooms_target(platform)))
            rooms = RoomServiceStub(channel)
            script = Script(platform, app, Connections(app), Peers(), kills)
            try:
                room_count = await calls(script, rooms)
            finally:
                await script.peers.close()
                await script.connections.close()
            await receiver.wait_for(
                lambda r: sum(1 for body in distinct(r) if body["eventCode"] == 4) >= room_count,
                timeout_s=60,
            )
            ends = await end_offsets(platform.kafka)
            await wait_until_read(platform.settings.database_url, ends, timeout_s=60)
            await ticks.until_read(ends)
            billing = platform.stub(BillingServiceStub, alive(platform, "billing"))
            figures = await overview(billing, app.biz_name, datetime.now(UTC).date())
            return Outcome(
                callbacks=Counter(
                    (
                        # A room the script did not name: the unanswered call's, if it has one.
                        script.names.get(body["roomId"], "unnamed"),
                        body["eventCode"],
                        script.names.get(body["uid"], body["uid"]),
                        body.get("exitType", 0),
                    )
                    for body in distinct(receiver)
                ),
                billing_counts={name: figures[name] for name in COUNTS},
                billed_stream_ms={
                    "published": int(str(figures["publishedStreamMs"])),
                    "subscribed": int(str(figures["subscribedStreamMs"])),
                },
                ticked_stream_ms=stream_ms(ticks.ticks),
                repeated_callbacks=len(receiver.acknowledged()) - len(receiver.acknowledged_ids()),
            )
    finally:
        await receiver.stop()


def distinct(receiver: Receiver) -> list[dict[str, Any]]:
    """Each acknowledged callback once (a dispatcher killed after sending, before saving, sends again)."""
    by_id = {r.headers["webhook-id"]: r.json() for r in receiver.acknowledged()}
    return list(by_id.values())


def alive(platform: Platform, name: str) -> str:
    return next(key for key in (name, f"{name}-2") if not platform[key].stopped)


async def calls(script: Script, rooms: RoomServiceStub) -> int:
    """The scripted calls, killing one process of each kind on the way when `script.kills`; the number of
    rooms made."""
    platform = script.platform
    # Room one and two, each publisher's peer on the other gateway than its subscriber.
    first = await audio_room(script, "one", await script.user("alice", 0), await script.user("bob", 1))
    second = await audio_room(script, "two", await script.user("carol", 1), await script.user("dave", 0))
    relays = {await relay_of(rooms, platform, first.room_id), await relay_of(rooms, platform, second.room_id)}
    assert relays == {"relay", "relay-2"}, "both rooms on one relay: the other has nothing to show"

    # A device calls a phone user with a time limit; both join the call's room.
    phone = await script.user("phone", 1)
    bell = await script.device("bell", authorised_user=phone)
    ringing_phone = await script.user("ringing-phone", 1)
    chime = await script.device("chime", authorised_user=ringing_phone)
    call_id = (await bell.ok("call", open_id=phone.uid, media="audio", time_limit_s=TIME_LIMIT_S))["call_id"]
    await phone.event("on_call_incoming")
    answered = await phone.ok("answer_call", call_id=call_id)
    script.names[answered["room_id"]] = "call"
    await bell.event("on_call_answered")
    await bell.ok("join_room", room_id=answered["room_id"], rtoken=answered["rtoken"])
    await phone.ok("join_room", room_id=answered["room_id"], rtoken=answered["rtoken"])
    # Another rings, unanswered, from just before the room manager dies.
    ring_id = (await chime.ok("call", open_id=ringing_phone.uid, media="audio"))["call_id"]
    await ringing_phone.event("on_call_incoming")

    # The leading room manager: the other takes the rooms, calls and timers over.
    await script.kill("rooms")
    await platform.until_serving(alive(platform, "rooms"))
    await all_flow([first, second])
    ended = await chime.event("on_call_end", timeout_s=RING_TIMEOUT_S + 30)
    assert (ended["call_id"], ended["reason"]) == (ring_id, "no_answer")
    assert (await ringing_phone.event("on_call_end"))["reason"] == "no_answer"

    # The second gateway: its clients resume their sessions on the first; media never went through it.
    await script.kill("gateway-2")
    if script.kills:
        first.subscriber = await script.resumed(first.subscriber, 0)
        second.publisher = await script.resumed(second.publisher, 0)
        phone = await script.resumed(phone, 0)
        await script.resumed(ringing_phone, 0)
    await all_flow([first, second])

    # The first room's relay: the other room goes on; the first is told, and set up on the live relay.
    dead_relay = await relay_of(rooms, platform, first.room_id)
    await script.kill(dead_relay)
    await media_flows(second)
    if script.kills:
        closed = await first.publisher.event("on_media_close", timeout_s=RELAY_LEASE_S + 30)
        assert (closed["code"], closed["feed_id"]) == (5009, first.feed_id)
        assert (await first.subscriber.event("on_unpublish"))["feed"]["feed_id"] == first.feed_id
        closed = await first.subscriber.event("on_media_close")
        assert (closed["code"], closed["feed_id"]) == (5006, first.feed_id)
        await publish_and_receive(script, first)
        assert await relay_of(rooms, platform, first.room_id) != dead_relay
    told = second.publisher.events + second.subscriber.events
    assert not [e for e in told if e["event"] == "on_media_close"], "the live relay's room was told"

    for kind in ("billing", "webhooks"):
        await script.kill(kind)
        await all_flow([first, second])

    # A new room lands on live replicas: the one gateway, room manager and relay left.
    third = await audio_room(
        script, "three", await script.user("erin", 0), await script.user("frank", len(platform.gateways) - 1)
    )
    if script.kills:
        assert await relay_of(rooms, platform, third.room_id) != dead_relay

    # No ghost: past the session grace, each room holds exactly its two connected peers.
    await asyncio.sleep(SESSION_GRACE_S + 1)
    for room in (first, second, third):
        expected = sorted([room.publisher.uid, room.subscriber.uid])
        assert await participants(rooms, room.room_id) == expected, room.name

    # The time limit, armed by the killed room manager, ends the call on the other.
    ended = await phone.event("on_call_end", timeout_s=TIME_LIMIT_S + 30)
    assert (ended["call_id"], ended["reason"]) == (call_id, "time_limit")
    assert (await bell.event("on_call_end"))["reason"] == "time_limit"

    for room in (first, second, third):
        for client in (room.publisher, room.subscriber):
            await client.ok("leave_room", room_id=room.room_id)
    for client in (first.publisher, first.subscriber, second.publisher, second.subscriber, bell, phone):
        await client.call("disconnect")
    return len([name for name in script.names.values() if name in ("one", "two", "three", "call")])


# Two runs of about a minute each; a loaded machine may take twice as long.
@pytest.mark.timeout(600)
async def test_one_process_of_each_kind_killed_mid_call_loses_and_doubles_nothing(tmp_path: Path) -> None:
    baseline = await run_script(tmp_path / "baseline", kills=False)
    killed = await run_script(tmp_path / "killed", kills=True)
    print(f"baseline: {baseline}\nkilled: {killed}")
    # The script left something to compare: every room's callbacks, and media metered.
    assert {(room, code) for room, code, _, _ in baseline.callbacks} >= {
        (room, code) for room in ("one", "two", "three", "call") for code in (1, 2, 3, 4)
    }
    assert min(baseline.ticked_stream_ms.values()) > 0
    assert killed.callbacks == baseline.callbacks
    assert killed.billing_counts == baseline.billing_counts
    for outcome in (baseline, killed):
        assert outcome.billed_stream_ms == outcome.ticked_stream_ms
