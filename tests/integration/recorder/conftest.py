"""The platform the recording tests drive over protocol v1: the licence service, the room manager, the
media relay, the recorder and a gateway, each its own ServiceRuntime in this process, on the session's
Tansu broker, real gRPC and real uvicorn; clients are plain WebSocket clients, and publishers real aiortc
peers on 127.0.0.1 without STUN.

The recorder's peer connections are counted, and every decoder and encoder aiortc creates is attributed:
the recorder must create none (it writes what it receives, remuxed).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.recorder.v1 import recorder_pb2

import services.recorder.capture
from services.core.config import (
    GatewaySettings,
    GrpcEndpoints,
    KafkaSettings,
    LicenceSettings,
    RecorderSettings,
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
from services.recorder.app import build as build_recorder
from services.relay.app import build as build_relay
from services.rooms.app import build as build_rooms
from tests.integration.codec_watch import codecs_watched
from tests.integration.licence_helpers import App, create_app
from tests.integration.protocol_client import Client, Connections

MASTER_KEY = base64.b64encode(b"c" * 32).decode()


@dataclass
class CodecGuard:
    """Decoders and encoders aiortc created, split into the recorder's and everyone else's."""

    recorder_peers: list[RTCPeerConnection] = field(default_factory=list)
    recorder: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    def decoder_created(self, codec: Any, caller: Any) -> None:
        # decoder_worker(loop, input_q, output_q, ...): input_q is the receiver's decoder queue.
        input_queue = caller.f_locals.get("input_q")
        mine = any(
            getattr(receiver, "_RTCRtpReceiver__decoder_queue", None) is input_queue
            for pc in self.recorder_peers
            for receiver in pc.getReceivers()
        )
        (self.recorder if mine else self.others).append(f"decoder {codec.mimeType}")

    def encoder_created(self, codec: Any, caller: Any) -> None:
        sender = caller.f_locals.get("self")
        mine = any(sender is mine for pc in self.recorder_peers for mine in pc.getSenders())
        (self.recorder if mine else self.others).append(f"encoder {codec.mimeType}")


@dataclass
class RecordingEvents:
    """Every event on parley.recording.v1, by record_id."""

    by_record: dict[str, list[recorder_pb2.RecordingEvent]] = field(default_factory=dict)

    async def record(self, event: recorder_pb2.RecordingEvent, envelope: Envelope) -> None:
        self.by_record.setdefault(event.record_id, []).append(event)

    def codes(self, record_id: str) -> list[int]:
        return [event.event_code for event in self.by_record.get(record_id, [])]

    async def wait_for(self, record_id: str, code: int, timeout_s: float = 30) -> recorder_pb2.RecordingEvent:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.by_record.get(record_id, []):
                    if event.event_code == code:
                        return event
                await asyncio.sleep(0.05)


@dataclass
class Platform:
    ws_url: str
    licence: LicenceServiceStub
    storage_dir: Path
    events: RecordingEvents
    guard: CodecGuard


@pytest.fixture(scope="module")
def codec_guard() -> Iterator[CodecGuard]:
    guard = CodecGuard()
    with codecs_watched(services.recorder.capture, guard.recorder_peers, guard):
        yield guard


async def _recording_consumer(kafka: str, events: RecordingEvents) -> KafkaBroker:
    broker = create_broker(kafka, client_id="recorder-tests", tracer_provider=TracerProvider())
    consumer = EventConsumer(
        broker, Topic.RECORDING, group_id=f"recorder-tests-{uuid.uuid4()}", max_wait_ms=50
    )
    consumer.on(recorder_pb2.RecordingEvent)(events.record)
    await broker.start()
    return broker


@pytest.fixture(scope="module")
async def platform(
    kafka: str, tmp_path_factory: pytest.TempPathFactory, codec_guard: CodecGuard
) -> AsyncIterator[Platform]:
    data_dir: Path = tmp_path_factory.mktemp("recorder")
    storage_dir = data_dir / "recordings"
    settings = Settings(
        data_dir=data_dir,
        kafka=KafkaSettings(bootstrap_servers=kafka),
        grpc=GrpcEndpoints(**{name.value: f"127.0.0.1:{free_port()}" for name in ServiceName}),
        gateway=GatewaySettings(http_port=0),
        licence=LicenceSettings(master_key=MASTER_KEY),
        rooms=RoomsSettings(session_grace_s=2.0, empty_room_grace_s=30.0),
        relay=RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"]),
        recorder=RecorderSettings(storage_dir=storage_dir, listen_address="127.0.0.1"),
    )
    runtimes = {name: ServiceRuntime(name, settings, set_global_tracing=False) for name in ServiceName}
    build_licence(runtimes[ServiceName.LICENCE])
    build_rooms(runtimes[ServiceName.ROOMS])
    build_relay(runtimes[ServiceName.RELAY])
    build_recorder(runtimes[ServiceName.RECORDER])
    http = build_gateway(runtimes[ServiceName.GATEWAY])
    started = [runtimes[name] for name in (ServiceName.LICENCE, ServiceName.ROOMS, ServiceName.RELAY)]
    started += [runtimes[ServiceName.RECORDER], runtimes[ServiceName.GATEWAY]]
    events = RecordingEvents()
    event_broker = await _recording_consumer(kafka, events)
    # One at a time: Alembic's migration context is global to the process, and two services migrate here.
    for runtime in started:
        await runtime.start()
    # The recorder follows feeds through parley.feed.v1 and the room manager pushes from
    # parley.recording.v1: both must be reading before the tests make facts.
    await asyncio.gather(
        runtimes[ServiceName.ROOMS].consumers_joined(), runtimes[ServiceName.RECORDER].consumers_joined()
    )
    channel = grpc.aio.insecure_channel(settings.grpc.address_of(ServiceName.LICENCE))
    yield Platform(
        ws_url=f"ws://127.0.0.1:{http.port}/ws/v1",
        licence=LicenceServiceStub(channel),
        storage_dir=storage_dir,
        events=events,
        guard=codec_guard,
    )
    await channel.close()
    await event_broker.stop()
    for runtime in reversed(started):
        await runtime.stop()


@pytest.fixture(scope="module")
async def app(platform: Platform) -> App:
    return await create_app(platform.licence, "recorder-tests")


@pytest.fixture
async def clients(platform: Platform, app: App) -> AsyncIterator[Any]:
    # Recordings take longer than room operations: responses and pushes are given more time here.
    connections = Connections(app, response_timeout_s=30, push_timeout_s=30)

    async def open_client(uid: str | None = None) -> Client:
        return await connections.open(platform.ws_url, uid)

    yield open_client
    await connections.close()


class ColourTrack(VideoStreamTrack):
    """A camera that sees one colour: composite tests find each participant in its cell by it."""

    def __init__(self, colour: tuple[int, int, int]) -> None:
        super().__init__()
        picture = np.zeros((480, 640, 3), dtype=np.uint8)
        picture[:] = colour
        self._yuv = VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p").to_ndarray()

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self._yuv, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Publisher:
    """A client's camera and microphone: aiortc's test tracks (or a camera of one colour), encoded (VP8
    and Opus unless told), ICE on loopback."""

    def __init__(
        self,
        *,
        video: str | None = "video/VP8",
        audio: str = "audio/opus",
        colour: tuple[int, int, int] | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.media_type = 1 if video else 2
        camera = ColourTrack(colour) if colour else VideoStreamTrack()
        tracks = [(AudioStreamTrack(), audio)] + ([(camera, video)] if video else [])
        for track, mime in tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities(track.kind).codecs
                    if c.mimeType.lower() == mime.lower()
                ]
            )

    async def publish(self, client: Client, tag: str = "camera") -> str:
        """Publish over the client's session; the feed id."""
        offer = await self.pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(offer)
        published = await client.ok(
            "publish", media_type=self.media_type, tag=tag, sdp=self.pc.localDescription.sdp
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=published["sdp"], type="answer"))
        return str(published["feed_id"])


@pytest.fixture
async def publishers() -> AsyncIterator[Any]:
    made: list[Publisher] = []

    def make(**codecs: Any) -> Publisher:
        made.append(Publisher(**codecs))
        return made[-1]

    yield make
    for publisher in made:
        await publisher.pc.close()
