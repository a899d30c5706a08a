"""P2P mode over protocol v1: two aiortc peers, each a WebSocket client of its own gateway, negotiate
through `p2p_signal` / `on_p2p_signal` (passed by the real room manager) and then talk to each other
directly on 127.0.0.1, with no relay in between; and the refusals around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from services.core.media.gathering import gathering_on
from tests.integration.protocol_client import Client

P2P = 2
MESSAGES = 200


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without its candidates, and each candidate as a trickled `candidate` signal would carry it
    (the browser's RTCIceCandidate: "candidate:...", its m-line's mid and index)."""
    kept: list[str] = []
    candidates: list[dict[str, Any]] = []
    mid, mline_index = None, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            mline_index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        if line.startswith("a=candidate:"):
            candidates.append(
                {"candidate": line.removeprefix("a="), "sdp_mid": mid, "sdp_mline_index": mline_index}
            )
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


def ice_candidate(signal: dict[str, Any]) -> RTCIceCandidate | None:
    """What aiortc takes for a received `candidate` signal; None at the end of the candidates."""
    if not signal["candidate"]:
        return None
    candidate = candidate_from_sdp(signal["candidate"].removeprefix("candidate:"))
    candidate.sdpMid = signal["sdp_mid"]
    candidate.sdpMLineIndex = signal["sdp_mline_index"]
    return candidate


class P2PPeer:
    """A participant of a P2P room: its WebSocket client and its peer connection (ICE on loopback only)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel: RTCDataChannel | None = None
        self.received: list[str] = []
        self.channel_open = asyncio.Event()
        self.remote_track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @self.pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._use(channel)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if not self.remote_track.done():
                self.remote_track.set_result(track)

    def open_channel(self) -> None:
        channel = self.pc.createDataChannel("chat", ordered=True)
        channel.on("open", self.channel_open.set)
        self._use(channel)

    def _use(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("message", self.received.append)
        if channel.readyState == "open":
            self.channel_open.set()

    async def describe(self, description: RTCSessionDescription) -> str:
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(description)
        return str(self.pc.localDescription.sdp)

    async def signal(self, to: str, **signal: Any) -> None:
        await self.client.ok("p2p_signal", to=to, **signal)

    async def send_description(self, to: str, kind: str, *, trickle: bool) -> None:
        description = await (self.pc.createOffer() if kind == "offer" else self.pc.createAnswer())
        sdp = await self.describe(description)
        if not trickle:
            await self.signal(to, type=kind, sdp=sdp)
            return
        bare, candidates = split_candidates(sdp)
        assert candidates and "a=candidate" not in bare
        await self.signal(to, type=kind, sdp=bare)
        for candidate in candidates:
            await self.signal(to, type="candidate", **candidate)
        # The browser's end-of-candidates: an empty candidate.
        await self.signal(to, type="candidate", candidate="", sdp_mid=candidates[0]["sdp_mid"])

    async def take_description(self, sender: str, kind: str, *, trickle: bool) -> None:
        received = await self.client.event("on_p2p_signal")
        assert (received["from"], received["type"]) == (sender, kind)
        assert received["room_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=received["sdp"], type=kind))
        while trickle:
            candidate = await self.client.event("on_p2p_signal")
            assert (candidate["from"], candidate["type"]) == (sender, "candidate")
            await self.pc.addIceCandidate(ice_candidate(candidate))
            trickle = bool(candidate["candidate"])


@pytest.fixture
async def pair(clients: Any) -> AsyncIterator[Callable[..., Any]]:
    """`await pair()`: alice on gateway 0 created a P2P room and bob on gateway 1 joined it."""
    made: list[P2PPeer] = []

    async def make() -> tuple[P2PPeer, P2PPeer, dict[str, Any]]:
        alice = P2PPeer(await clients(gateway=0))
        bob = P2PPeer(await clients(gateway=1))
        made.extend([alice, bob])
        room = await alice.client.ok("create_room", engine=P2P)
        joined = await bob.client.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"], engine=P2P)
        assert joined == {"room_id": room["room_id"], "engine": P2P}
        # Seed 002 3.4.4: the one already in the room starts once it hears of the other (OnNewJoiner).
        assert (await alice.client.event("on_new_joiner_in"))["participant"] == bob.client.uid
        await bob.client.event("on_room_attendance_list")
        return alice, bob, room

    yield make
    for peer in made:
        await peer.pc.close()


def nominated_pair(peer: P2PPeer) -> Any:
    """The ICE candidate pair the peer's DataChannel transport uses (aioice's, component 1)."""
    assert peer.pc.sctp is not None
    return peer.pc.sctp.transport.transport.iceGatherer._connection._nominated[1]


async def exchange(alice: P2PPeer, bob: P2PPeer) -> None:
    """Both send MESSAGES ordered messages at once; each gets all of the other's, in order."""
    assert alice.channel is not None and bob.channel is not None
    for n in range(MESSAGES):
        alice.channel.send(f"a{n}")
        bob.channel.send(f"b{n}")
    async with asyncio.timeout(30):
        while len(alice.received) < MESSAGES or len(bob.received) < MESSAGES:
            await asyncio.sleep(0.05)
    assert bob.received == [f"a{n}" for n in range(MESSAGES)]
    assert alice.received == [f"b{n}" for n in range(MESSAGES)]


async def negotiate(offerer: Any, answerer: Any, *, trickle: bool) -> None:
    """Offer and answer through the gateways, then wait for the offerer's DataChannel to open at both ends."""
    await offerer.send_description(answerer.client.uid, "offer", trickle=trickle)
    await answerer.take_description(offerer.client.uid, "offer", trickle=trickle)
    await answerer.send_description(offerer.client.uid, "answer", trickle=trickle)
    await offerer.take_description(answerer.client.uid, "answer", trickle=trickle)
    async with asyncio.timeout(30):
        await offerer.channel_open.wait()
        await answerer.channel_open.wait()


async def test_two_peers_on_two_gateways_open_a_data_channel_with_trickled_candidates(
    platform: Any, pair: Callable[..., Any]
) -> None:
    alice, bob, room = await pair()
    alice.open_channel()
    await negotiate(alice, bob, trickle=True)
    await exchange(alice, bob)

    # Straight between the peers: each one's selected pair ends at the other's socket.
    alice_pair, bob_pair = nominated_pair(alice), nominated_pair(bob)
    assert alice_pair.remote_addr == bob_pair.local_addr and bob_pair.remote_addr == alice_pair.local_addr
    assert alice_pair.local_addr[0] == bob_pair.local_addr[0] == "127.0.0.1"

    await alice.signal(bob.client.uid, type="bye")
    assert await bob.client.event("on_p2p_signal") == {
        "room_id": room["room_id"],
        "from": alice.client.uid,
        "type": "bye",
    }

    # The room's facts carry its engine; with no relay there are no feed facts.
    room_id = room["room_id"]
    await alice.client.ok("leave_room")
    await bob.client.ok("leave_room")
    destroyed = await platform.facts.wait_for(room_id, "RoomDestroyed")
    assert destroyed.engine == P2P
    assert platform.facts.types(room_id) == [
        "RoomCreated",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantLeft",
        "ParticipantLeft",
        "RoomDestroyed",
    ]
    assert {event.engine for event in platform.facts.events(room_id)} == {P2P}


async def test_inline_candidates_carry_audio_and_data_straight_between_the_peers(
    pair: Callable[..., Any],
) -> None:
    alice, bob, _ = await pair()
    alice.pc.addTrack(AudioStreamTrack())
    alice.open_channel()
    await negotiate(alice, bob, trickle=False)
    async with asyncio.timeout(30):
        track = await bob.remote_track
        # Audio frames decoded at bob came from alice's track, over the pair of loopback sockets.
        for _ in range(5):
            frame = await track.recv()
            assert frame.sample_rate > 0
    await exchange(alice, bob)


async def test_p2p_refusals(clients: Any, pair: Callable[..., Any], peers: Any) -> None:
    alice, bob, room = await pair()
    carol = await clients(gateway=0)

    third = await carol.call("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    assert (third["code"], third["reason"]) == (-403, "ROOM_FULL")
    mismatch = await carol.call("join_room", room_id=room["room_id"], rtoken=room["rtoken"], engine=0)
    assert (mismatch["code"], mismatch["reason"]) == (-403, "ENGINE_MISMATCH")

    offer = await peers(send=True).offer()
    published = await alice.client.call("publish", media_type=1, sdp=offer)
    assert (published["code"], published["reason"]) == (5104, "PUBLISH_IN_P2P_ROOM")
    subscribed = await bob.client.call("subscribe", feed_id="f1", sdp=offer)
    assert (subscribed["code"], subscribed["reason"]) == (-1087, "SUBSCRIBE_IN_P2P_ROOM")

    stranger = await alice.client.call("p2p_signal", to=carol.uid, type="offer", sdp=offer)
    assert (stranger["code"], stranger["reason"]) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    to_self = await alice.client.call("p2p_signal", to=alice.client.uid, type="bye")
    assert (to_self["code"], to_self["reason"]) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    outside = await carol.call("p2p_signal", to=alice.client.uid, type="bye")
    assert (outside["code"], outside["reason"]) == (-91010, "NOT_IN_ROOM")
    for params in (
        {"to": bob.client.uid, "type": "offer"},
        {"to": bob.client.uid, "type": "answer", "sdp": "hello"},
        {"to": bob.client.uid, "type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"},
        {"to": bob.client.uid, "type": "hello"},
        {"to": bob.client.uid, "type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 3000},
        {"to": bob.client.uid, "type": "offer", "sdp": "v=0\r\ns=" + "\u00e9" * 6200 + "\r\n"},
        {"to": "not a uid", "type": "bye"},
    ):
        bad = await alice.client.call("p2p_signal", **params)
        assert (bad["code"], bad["reason"]) == (-91003, "INVALID_PARAMS"), params
    # None of it reached bob.
    assert [e for e in await bob.client.quiet(0.3) if e["event"] == "on_p2p_signal"] == []


async def test_engines_and_data_channels_outside_p2p(clients: Any) -> None:
    alice = await clients(gateway=0)
    aliyun = await alice.call("create_room", engine=1)
    assert (aliyun["code"], aliyun["reason"]) == (-202, "ENGINE_UNSUPPORTED")
    unknown = await alice.call("create_room", engine=7)
    assert (unknown["code"], unknown["reason"]) == (-91003, "INVALID_PARAMS")
    recorded = await alice.call("create_room", engine=P2P, ext={"defaultRecord": True})
    assert (recorded["code"], recorded["reason"]) == (-202, "P2P_NOT_RECORDED")

    room = await alice.ok("create_room")
    bob = await clients(gateway=1)
    mismatch = await bob.call("join_room", room_id=room["room_id"], rtoken=room["rtoken"], engine=P2P)
    assert (mismatch["code"], mismatch["reason"]) == (-403, "ENGINE_MISMATCH")
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"], engine=0)
    signal = await bob.call("p2p_signal", to=alice.uid, type="bye")
    assert (signal["code"], signal["reason"]) == (-91040, "NOT_P2P_ROOM")

    # Seed 002 -203: a DataChannel needs P2P mode. The offer is a real one, with audio besides.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.createDataChannel("chat")
        with gathering_on(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        assert "m=application" in sdp
        refused = await alice.call("publish", media_type=2, sdp=sdp)
        assert (refused["code"], refused["reason"]) == (-203, "DATA_CHANNEL_NOT_P2P")
    finally:
        await pc.close()


async def test_an_apps_backend_creates_a_p2p_room_over_http(platform: Any, app: Any, clients: Any) -> None:
    base_url = platform.ws_urls[0].replace("ws://", "http://").removesuffix("/ws/v1")
    body = {"bizName": app.biz_name, "uid": "backend"}
    async with httpx.AsyncClient(base_url=base_url) as http:
        created = await http.post("/v1/rooms", json={**body, "engine": P2P})
        aliyun = await http.post("/v1/rooms", json={**body, "engine": 1})
    assert created.status_code == 201, created.text
    assert created.json()["engine"] == P2P
    assert aliyun.json()["code"] == -202, aliyun.text
    room = created.json()
    alice = await clients(gateway=0)
    joined = await alice.ok("join_room", room_id=room["roomId"], rtoken=room["rtoken"])
    assert joined["engine"] == P2P
