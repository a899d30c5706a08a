"""One feed received from its relay, as an internal subscriber, and handed to its sinks: its own files
(single mode: remuxed, files.py) or the job's compositor (composite mode: compositor.py).

The recorder sends the relay a recvonly offer (gRPC Subscribe, like a gateway does for a client) from an
aiortc peer connection that gathers only on the configured address and names no STUN server. Each
receiver's decoder queue is replaced by the relay's own `EncodedFrameTap` (services/core/media/frame_tap.py,
docs/relay.md "How forwarding hooks into aiortc"): the receiver still does SRTP, NACKs, PLIs and the
jitter buffer, and hands over each complete encoded frame, which goes straight to the sinks; its
decoder thread ends before it creates a decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
import structlog
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from parley.relay.v1 import media_pb2, relay_pb2
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub

from services.core.media.frame_tap import EncodedFrameTap, tap_receiver
from services.core.media.gathering import gathering_on
from services.recorder.files import AUDIO_CODECS, VIDEO_CODECS, WriteFailed

log = structlog.get_logger(__name__)

# The uid the recorder subscribes as: the relay's metering ticks name it.
RECORDER_UID = "parley-recorder"
# Seed 002 Publish media_type: 1 audio and video, 2 audio only, 3 video only.
_MEDIA_KINDS = {1: ("audio", "video"), 2: ("audio",), 3: ("video",)}
# aiortc's private coroutine that sends RTCP PLI for an SSRC (aiortc 1.16 RTCRtpReceiver).
SEND_PLI = "_send_rtcp_pli"


@dataclass(frozen=True)
class FeedSource:
    feed_id: str
    uid: str
    media_type: int
    tag: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return _MEDIA_KINDS.get(self.media_type, ("audio", "video"))


class FrameSink(Protocol):
    """Where a feed's encoded frames go: a file (files.FeedFile) or a compositor's input."""

    @property
    def waiting_for_keyframe(self) -> bool: ...

    def write_video(self, rtp_timestamp: int, data: bytes) -> None: ...

    def write_audio(self, rtp_timestamp: int, data: bytes) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


# The sinks for a feed whose negotiated codecs are (video, audio) RTP names, "" for a kind it lacks;
# raises OSError when a file cannot be created.
SinkFactory = Callable[[str, str], list[FrameSink]]


class SubscribeFailed(Exception):
    """The relay refused the subscription or its link did not connect: seed 002 event 100003."""


class FileCreateFailed(Exception):
    """The feed's file could not be created: seed 002 event 100101."""


def _codec_name(mime: str) -> str:
    return mime.split("/", 1)[-1].lower()


class FeedCapture:
    def __init__(
        self,
        source: FeedSource,
        *,
        room_id: str,
        biz_name: str,
        relay: RelayServiceStub,
        kinds: tuple[str, ...],
        make_sinks: SinkFactory,
        listen_address: str,
        rpc_timeout_s: float,
        connect_timeout_s: float,
        on_end: Callable[[FeedCapture], None],
        on_write_failed: Callable[[FeedCapture, str], None],
    ) -> None:
        self.source = source
        self._room_id = room_id
        self._biz_name = biz_name
        self._relay = relay
        self._kinds = kinds
        self._make_sinks = make_sinks
        self._listen_address = listen_address
        self._rpc_timeout_s = rpc_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._on_end = on_end
        self._on_write_failed = on_write_failed
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._subscription_id = ""
        self._open_tracks: set[str] = set()
        self.sinks: list[FrameSink] = []
        self.video_codec = ""
        self.audio_codec = ""
        self.ended = False
        # Frames received, also while paused (the health of the link, not of the file): health.py.
        self.frames = 0
        self.video_frames = 0
        self._closed = False
        self._writing = True
        self._requests: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Subscribe at the relay and create the sinks; raises SubscribeFailed or FileCreateFailed."""
        kinds = self._kinds
        for kind in kinds:
            transceiver = self._pc.addTransceiver(kind, direction="recvonly")
            tap_receiver(transceiver.receiver, kind, self._tap(kind))
        offer = await self._pc.createOffer()
        # A wildcard address keeps aioice's own choice of interfaces, as the relay's ICE settings do.
        gathering = (
            contextlib.nullcontext()
            if self._listen_address == "0.0.0.0"
            else gathering_on([self._listen_address])
        )
        with gathering:
            await self._pc.setLocalDescription(offer)
        try:
            answer = await self._relay.Subscribe(
                relay_pb2.SubscribeRequest(
                    biz_name=self._biz_name,
                    room_id=self._room_id,
                    uid=RECORDER_UID,
                    feed_id=self.source.feed_id,
                    sdp_offer=self._pc.localDescription.sdp,
                    audio="audio" in kinds,
                    video="video" in kinds,
                ),
                timeout=self._rpc_timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise SubscribeFailed(f"the relay refused: {error.code().name} {error.details()}") from None
        self._subscription_id = answer.subscription_id
        for track in answer.tracks:
            name = _codec_name(track.codec)
            if track.kind == media_pb2.MEDIA_KIND_VIDEO and name in VIDEO_CODECS:
                self.video_codec = name
            elif track.kind == media_pb2.MEDIA_KIND_AUDIO and name in AUDIO_CODECS:
                self.audio_codec = name
        if not self.video_codec and not self.audio_codec:
            raise SubscribeFailed(f"no track the recorder can write: {[t.codec for t in answer.tracks]}")
        try:
            self.sinks = self._make_sinks(self.video_codec, self.audio_codec)
        except OSError as error:
            raise FileCreateFailed(f"{error.strerror or error}: {error.filename or ''}") from None
        self._open_tracks = {kind for kind in kinds}
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp_answer, type="answer"))
        await self._connected()

    def pause(self) -> None:
        for sink in self.sinks:
            sink.pause()

    def resume(self) -> None:
        for sink in self.sinks:
            sink.resume()
        if any(sink.waiting_for_keyframe for sink in self.sinks):
            self._request_keyframe()

    def stop_writing(self) -> None:
        """Frames from now on are left out: the files end here, whenever the link winds down."""
        self._writing = False

    async def close(self) -> None:
        """Stop receiving, stop the subscription at the relay, finish the sinks; raises WriteFailed (the
        first a sink raised, after every sink was closed)."""
        if self._closed:
            return
        self._closed = True
        try:
            # A stop must not wait on a link that does not wind down: the file is what matters.
            await asyncio.wait_for(self._pc.close(), self._rpc_timeout_s)
        except TimeoutError:
            log.warning("recorder_link_close_timed_out", feed_id=self.source.feed_id)
        if self._subscription_id:
            try:
                await self._relay.Unsubscribe(
                    relay_pb2.UnsubscribeRequest(
                        room_id=self._room_id, subscription_id=self._subscription_id
                    ),
                    timeout=self._rpc_timeout_s,
                )
            except grpc.aio.AioRpcError as error:
                # The feed may be gone with its subscriptions; the relay drops an orphan when it notices.
                log.info("recorder_unsubscribe_failed", feed_id=self.source.feed_id, code=error.code().name)
        failure: WriteFailed | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except WriteFailed as error:
                failure = failure or error
        if failure is not None:
            raise failure

    async def _connected(self) -> None:
        connected = asyncio.Event()

        def changed() -> None:
            if self._pc.connectionState in ("connected", "failed", "closed"):
                connected.set()

        self._pc.on("connectionstatechange", changed)
        changed()
        try:
            await asyncio.wait_for(connected.wait(), self._connect_timeout_s)
        except TimeoutError:
            raise SubscribeFailed("the link to the relay did not connect in time") from None
        if self._pc.connectionState != "connected":
            raise SubscribeFailed(f"the link to the relay {self._pc.connectionState}")

    def _tap(self, kind: str) -> EncodedFrameTap:
        def on_frame(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if self._closed or not self._writing:
                return
            self.frames += 1
            if kind == "video":
                self.video_frames += 1
            try:
                for sink in self.sinks:
                    if kind == "video":
                        sink.write_video(frame.timestamp, frame.data)
                    else:
                        sink.write_audio(frame.timestamp, frame.data)
            except WriteFailed as error:
                self._closed_by_failure(str(error))

        def on_end() -> None:
            self._open_tracks.discard(kind)
            if not self._open_tracks and not self.ended:
                self.ended = True
                self._on_end(self)

        return EncodedFrameTap(on_frame, on_end)

    def _closed_by_failure(self, message: str) -> None:
        if not self.ended:
            self.ended = True
            self._on_write_failed(self, message)

    def _request_keyframe(self) -> None:
        for transceiver in self._pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            receiver = transceiver.receiver
            for ssrc in {source.source for source in receiver.getSynchronizationSources()}:
                task = asyncio.ensure_future(getattr(receiver, SEND_PLI)(ssrc))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
