"""The platform the room tests drive with plain WebSocket clients: the licence service, the room manager,
the media relay and TWO gateways, each its own ServiceRuntime in this process, on a Tansu broker of their
own (tests/testing.py), real gRPC and real uvicorn. Peers of one room are put on different gateways
throughout.

Graces are short here (a dropped session is removed after 2 s, an empty room after 1 s, an unanswered
call after 2 s) so that the tests see them end; the defaults are 15 s, 60 s and 30 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.rooms.v1 import events_pb2

from services.core.config import ServiceName
from services.core.media.gathering import gathering_on
from services.core.topics import Topic
from tests.integration.licence_helpers import App, create_app
from tests.integration.protocol_client import Client, Connections
from tests.testing import Facts, start_platform
from tests.testing import Platform as TestPlatform

SESSION_GRACE_S = 2.0
EMPTY_ROOM_GRACE_S = 1.0
CALL_RING_TIMEOUT_S = 2.0
ROOM_EVENTS = (
    events_pb2.RoomCreated,
    events_pb2.RoomDestroyed,
    events_pb2.ParticipantJoined,
    events_pb2.ParticipantLeft,
    events_pb2.FeedPublished,
    events_pb2.FeedUnpublished,
    events_pb2.SubscriptionStarted,
    events_pb2.SubscriptionEnded,
    events_pb2.CallStarted,
    events_pb2.CallAnswered,
    events_pb2.CallEnded,
)


@dataclass
class Platform:
    # Two gateway processes behind "one address": clients pick one or the other.
    ws_urls: tuple[str, str]
    licence: LicenceServiceStub
    # Every event on parley.room.v1 and parley.feed.v1 by room_id, and on parley.call.v1 by call_id.
    facts: Facts
    running: TestPlatform
    session_grace_s: float = SESSION_GRACE_S
    call_ring_timeout_s: float = CALL_RING_TIMEOUT_S


@pytest.fixture(scope="session")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with start_platform(
        tmp_path_factory.mktemp("rooms"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.GATEWAY,
        ServiceName.GATEWAY,
        settings={
            "rooms": {
                "session_grace_s": SESSION_GRACE_S,
                "empty_room_grace_s": EMPTY_ROOM_GRACE_S,
                "call_ring_timeout_s": CALL_RING_TIMEOUT_S,
            }
        },
    ) as running:
        first, second = running.gateways
        yield Platform(
            ws_urls=(first.ws_url, second.ws_url),
            licence=running.licence,
            facts=await running.record((Topic.ROOM, Topic.FEED, Topic.CALL), ROOM_EVENTS),
            running=running,
        )


@pytest.fixture
async def third_gateway(platform: Platform) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """One more gateway process, for a test to stop: its WebSocket URL, and how to stop it."""
    (gateway,) = await platform.running.start(ServiceName.GATEWAY)

    async def stop() -> None:
        await platform.running.stop(gateway.key)

    yield gateway.ws_url, stop
    await stop()


@pytest.fixture(scope="session")
async def app(platform: Platform) -> App:
    return await create_app(platform.licence, "room-tests")


@pytest.fixture
async def clients(platform: Platform, app: App) -> AsyncIterator[Any]:
    """`await clients(uid, gateway=0)`: a client connected as `uid` on gateway 0 or 1."""
    connections = Connections(app)

    async def open_client(
        uid: str | None = None, *, gateway: int | str = 0, connect_as: bool = True
    ) -> Client:
        """`gateway` is 0 or 1, or the URL of another gateway."""
        url = gateway if isinstance(gateway, str) else platform.ws_urls[gateway]
        return await connections.open(url, uid, connect_as=connect_as)

    yield open_client
    await connections.close()


class Peer:
    """An aiortc peer connection that makes the offers a browser would (ICE on loopback only)."""

    def __init__(self, *, send: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if send:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
            self.pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(offer)
        return str(self.pc.localDescription.sdp)


@pytest.fixture
async def peers() -> AsyncIterator[Any]:
    made: list[Peer] = []

    def make(*, send: bool) -> Peer:
        made.append(Peer(send=send))
        return made[-1]

    yield make
    for peer in made:
        await peer.pc.close()
