"""The platform the room tests drive with plain WebSocket clients: the licence service, the room manager,
the media relay and TWO gateways, each its own ServiceRuntime in this process, on the session's Tansu
broker, real gRPC and real uvicorn. Peers of one room are put on different gateways throughout.

Graces are short here (a dropped session is removed after 2 s, an empty room after 1 s, an unanswered
call after 2 s) so that the tests see them end; the defaults are 15 s, 60 s and 30 s.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from faststream.kafka import KafkaBroker
from google.protobuf.message import Message
from opentelemetry.sdk.trace import TracerProvider
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.rooms.v1 import events_pb2

from services.core.config import (
    GatewaySettings,
    GrpcEndpoints,
    KafkaSettings,
    LicenceSettings,
    RelaySettings,
    RoomsSettings,
    ServiceName,
    Settings,
)
from services.core.embedded_broker import free_port
from services.core.events import Envelope, EventConsumer, create_broker
from services.core.media.gathering import gathering_on
from services.core.service import ServiceRuntime
from services.core.topics import Topic
from services.gateway.app import build as build_gateway
from services.licence.app import build as build_licence
from services.relay.app import build as build_relay
from services.rooms.app import build as build_rooms
from tests.integration.licence_helpers import App, create_app
from tests.integration.protocol_client import Client, Connections

MASTER_KEY = base64.b64encode(b"r" * 32).decode()
SESSION_GRACE_S = 2.0
EMPTY_ROOM_GRACE_S = 1.0
CALL_RING_TIMEOUT_S = 2.0


@dataclass
class Platform:
    # Two gateway processes behind "one address": clients pick one or the other.
    ws_urls: tuple[str, str]
    licence: LicenceServiceStub
    facts: Facts
    # Settings for one more gateway process, given its gRPC address.
    settings_for_gateway: Callable[[str], Settings]
    session_grace_s: float = SESSION_GRACE_S
    call_ring_timeout_s: float = CALL_RING_TIMEOUT_S


@dataclass
class Facts:
    """Every event on parley.room.v1 and parley.feed.v1 by room_id, and on parley.call.v1 by call_id, as
    (type, event)."""

    by_room: dict[str, list[tuple[str, Message]]] = field(default_factory=dict)

    async def record(self, event: Message, envelope: Envelope) -> None:
        key = getattr(event, "call_id", "") or getattr(event, "room_id", "")
        self.by_room.setdefault(key, []).append((type(event).__name__, event))

    def types(self, room_id: str) -> list[str]:
        return [name for name, _ in self.by_room.get(room_id, [])]

    async def wait_for(self, room_id: str, name: str, timeout_s: float = 20) -> Message:
        async with asyncio.timeout(timeout_s):
            while True:
                for kind, event in self.by_room.get(room_id, []):
                    if kind == name:
                        return event
                await asyncio.sleep(0.05)


async def _fact_consumer(kafka: str, facts: Facts) -> KafkaBroker:
    broker = create_broker(kafka, client_id="rooms-tests", tracer_provider=TracerProvider())
    group = f"rooms-tests-{uuid.uuid4()}"
    for topic in (Topic.ROOM, Topic.FEED, Topic.CALL):
        consumer = EventConsumer(broker, topic, group_id=f"{group}-{topic.value}", max_wait_ms=50)
        for event_type in (
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
        ):
            consumer.on(event_type)(facts.record)
    await broker.start()
    return broker


@pytest.fixture(scope="session")
async def platform(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    data_dir: Path = tmp_path_factory.mktemp("rooms")
    endpoints = GrpcEndpoints(**{name.value: f"127.0.0.1:{free_port()}" for name in ServiceName})

    def settings(gateway_grpc: str) -> Settings:
        return Settings(
            data_dir=data_dir,
            kafka=KafkaSettings(bootstrap_servers=kafka),
            grpc=endpoints.model_copy(update={"gateway": gateway_grpc}),
            gateway=GatewaySettings(http_port=0),
            licence=LicenceSettings(master_key=MASTER_KEY),
            rooms=RoomsSettings(
                session_grace_s=SESSION_GRACE_S,
                empty_room_grace_s=EMPTY_ROOM_GRACE_S,
                call_ring_timeout_s=CALL_RING_TIMEOUT_S,
            ),
            relay=RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"]),
        )

    first, second = settings(endpoints.gateway), settings(f"127.0.0.1:{free_port()}")
    licence = ServiceRuntime(ServiceName.LICENCE, first, set_global_tracing=False)
    rooms = ServiceRuntime(ServiceName.ROOMS, first, set_global_tracing=False)
    relay = ServiceRuntime(ServiceName.RELAY, first, set_global_tracing=False)
    gateways = [ServiceRuntime(ServiceName.GATEWAY, s, set_global_tracing=False) for s in (first, second)]
    build_licence(licence)
    build_rooms(rooms)
    build_relay(relay)
    https = [build_gateway(gateway) for gateway in gateways]
    facts = Facts()
    runtimes = [licence, rooms, relay, *gateways]
    fact_broker, *_ = await asyncio.gather(_fact_consumer(kafka, facts), *(r.start() for r in runtimes))
    channel = grpc.aio.insecure_channel(endpoints.licence)
    yield Platform(
        ws_urls=(f"ws://127.0.0.1:{https[0].port}/ws/v1", f"ws://127.0.0.1:{https[1].port}/ws/v1"),
        licence=LicenceServiceStub(channel),
        facts=facts,
        settings_for_gateway=settings,
    )
    await channel.close()
    await fact_broker.stop()
    for runtime in reversed(runtimes):
        await runtime.stop()


@pytest.fixture
async def third_gateway(platform: Platform) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """One more gateway process, for a test to stop: its WebSocket URL, and how to stop it."""
    runtime = ServiceRuntime(
        ServiceName.GATEWAY,
        platform.settings_for_gateway(f"127.0.0.1:{free_port()}"),
        set_global_tracing=False,
    )
    http = build_gateway(runtime)
    await runtime.start()
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        stopped = True
        await runtime.stop()

    yield f"ws://127.0.0.1:{http.port}/ws/v1", stop
    if not stopped:
        await runtime.stop()


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
