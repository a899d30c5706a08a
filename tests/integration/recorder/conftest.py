"""The platform the recording tests drive over protocol v1: the licence service, the room manager, the
media relay, the recorder and a gateway, each its own ServiceRuntime in this process, on a Tansu broker of
their own (tests/testing.py), real gRPC and real uvicorn; clients are plain WebSocket clients, and
publishers real aiortc peers on 127.0.0.1 without STUN.

The recorder's peer connections are counted, and every decoder and encoder aiortc creates is attributed:
the recorder must create none (it writes what it receives, remuxed, or decodes with PyAV on its
compositor's thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import VideoFrame
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.recorder.v1 import recorder_pb2

import services.recorder.capture
from services.core.config import ServiceName
from services.core.media.gathering import gathering_on
from services.core.topics import Topic
from tests.integration.codec_watch import codecs_watched
from tests.integration.licence_helpers import App, create_app
from tests.integration.protocol_client import Client, Connections
from tests.testing import Facts, start_platform


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
class Platform:
    ws_url: str
    licence: LicenceServiceStub
    storage_dir: Path
    # Every event on parley.recording.v1, by record_id, and the same by room_id.
    events: Facts
    by_room: Facts
    guard: CodecGuard


@pytest.fixture(scope="module")
def codec_guard() -> Iterator[CodecGuard]:
    guard = CodecGuard()
    with codecs_watched(services.recorder.capture, guard.recorder_peers, guard):
        yield guard


@pytest.fixture(scope="module")
async def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, codec_guard: CodecGuard
) -> AsyncIterator[Platform]:
    # A module may lay settings of its own over these (PLATFORM_SETTINGS), e.g. shorter warning times.
    settings = {"rooms": {"session_grace_s": 2.0, "empty_room_grace_s": 30.0}}
    for service, values in getattr(request.module, "PLATFORM_SETTINGS", {}).items():
        settings[service] = {**settings.get(service, {}), **values}
    async with start_platform(
        tmp_path_factory.mktemp("recorder"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.RECORDER,
        ServiceName.GATEWAY,
        settings=settings,
    ) as running:
        events = await running.record([Topic.RECORDING], [recorder_pb2.RecordingEvent], timeout_s=30)
        by_room = await running.record(
            [Topic.RECORDING], [recorder_pb2.RecordingEvent], key=lambda event: event.room_id, timeout_s=30
        )
        # The recorder follows feeds through parley.feed.v1 and the room manager pushes from
        # parley.recording.v1: both must be reading before the tests make facts.
        await running.consumers_joined(ServiceName.ROOMS, ServiceName.RECORDER)
        yield Platform(
            ws_url=running.ws_url,
            licence=running.licence,
            storage_dir=running.settings.recordings_dir(),
            events=events,
            by_room=by_room,
            guard=codec_guard,
        )


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


async def until_media(client: Any, record_id: str, packets: int) -> None:
    """Until the recording's first file has that many video packets (get_record_info counts them live)."""
    async with asyncio.timeout(30):
        while True:
            files = (await client.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if files and files[0]["video_packets"] >= packets:
                return
            await asyncio.sleep(0.1)


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
        camera: MediaStreamTrack | None = None,
        microphone: MediaStreamTrack | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.media_type = 1 if video else 2
        camera = camera or (ColourTrack(colour) if colour else VideoStreamTrack())
        tracks = [(microphone or AudioStreamTrack(), audio)] + ([(camera, video)] if video else [])
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
