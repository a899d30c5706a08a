"""A published feed on the relay: the publisher's peer connection and one `FeedTrack` per kind.

A `FeedTrack` receives encoded frames from its receiver's tap, reads key frames and picture size from
them, counts them for metering, and hands each frame to every subscriber's `ForwardedTrack`. All of it
runs on the event loop inside aiortc's packet handling, so per frame it makes one `av.Packet` and one
list of RTP payloads that all subscribers share, with their byte count and one clock reading, and each
subscriber's sender sends them from there: no awaiting on the media path. The senders' datagrams wait in
the relay's `Outbox` until the fan-out ends and leave together (services/relay/fast_send.py). The
payloads are the ones the publisher sent (a video frame from the marker jitter buffer carries them): its
packetization is already one every subscriber of the codec can depacketize, so cutting the frame up
again would only cost CPU. A frame without them (audio from the
stock buffer) is packetized once for all subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.packet import Packet
from parley.relay.v1 import media_pb2

from services.core.media.bitstream import (
    FrameInfo,
    H264ParameterSets,
    inspect_h264,
    inspect_vp8,
    split_annexb,
)
from services.core.media.jitter_buffer import PacketizedFrame
from services.relay.close_codes import CloseCode
from services.relay.fast_send import Outbox
from services.relay.forwarded_track import ForwardedTrack
from services.relay.keyframes import KeyframeRequester
from services.relay.metering import StreamMeter, resolution_tier
from services.relay.packetizer import packetizer_for
from services.relay.peer import Peer
from services.relay.rtp_writer import ntp_now


class FeedTrack:
    def __init__(
        self,
        *,
        kind: str,
        codec: RTCRtpCodecParameters,
        receiver: RTCRtpReceiver,
        media_ssrc: int | None,
        meter: StreamMeter,
        keyframe_interval_s: float,
        outbox: Outbox,
    ) -> None:
        self.kind = kind
        self.codec = codec
        self.receiver = receiver
        self.meter = meter
        self._media_ssrc = media_ssrc
        self._time_base = Fraction(1, codec.clockRate)
        self._h264 = H264ParameterSets() if codec.mimeType.lower() == "video/h264" else None
        self._subscribers: set[ForwardedTrack] = set()
        self._outbox = outbox
        # For frames that come without the publisher's payloads. One VP8 picture id sequence for the feed:
        # each subscriber starts at a key frame, wherever it is.
        self._packetizer = packetizer_for(codec)
        self.keyframes = KeyframeRequester(self._send_pli, interval_s=keyframe_interval_s)
        self.ended = False
        # The publisher muted this kind (muteLocalAudio / muteLocalVideo): nothing is forwarded or metered.
        self.paused = False
        self.frames = 0
        self.key_frames = 0
        self.bytes = 0
        self.size: tuple[int, int] | None = None
        self.tier: media_pb2.ResolutionTier.ValueType = (
            media_pb2.RESOLUTION_TIER_AUDIO if kind == "audio" else media_pb2.RESOLUTION_TIER_UNSPECIFIED
        )

    def on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """A frame the publisher's receiver assembled (the tap's callback; `codec` is the feed's)."""
        if self.paused:
            return
        data = frame.data
        info = self._inspect(data)
        if info.size is not None and info.size != self.size:
            self.size = info.size
            self.tier = resolution_tier(*info.size)
        self.frames += 1
        if info.keyframe and self.kind == "video":
            self.key_frames += 1
        self.bytes += len(data)
        self.meter.add(len(data), self.tier)
        if not self._subscribers:
            return
        packet = Packet(data)
        packet.pts = frame.timestamp
        packet.time_base = self._time_base
        packet.is_keyframe = info.keyframe
        if isinstance(frame, PacketizedFrame):
            payloads = frame.payloads
        else:
            payloads = self._packetizer.packetize(data)
        # What every subscriber's sender would compute alike: the payloads' bytes for its sender reports
        # and one clock reading for abs-send-time; the subscribers' datagrams leave together at the end.
        octets = sum(map(len, payloads))
        ntp = ntp_now()
        outbox = self._outbox
        outbox.hold()
        try:
            for subscriber in tuple(self._subscribers):
                subscriber.push(packet, payloads, octets, ntp)
        finally:
            outbox.flush()

    def on_end(self) -> None:
        """The publisher's stream ended (RTCP BYE, or its peer closed): so do the subscribers' tracks."""
        if self.ended:
            return
        self.ended = True
        self.keyframes.close()
        for subscriber in self._subscribers:
            subscriber.finish()
        self._subscribers.clear()

    def set_paused(self, paused: bool) -> None:
        """Stop or resume forwarding to every subscriber; resumed video starts again at a key frame."""
        if paused == self.paused:
            return
        self.paused = paused
        if not paused:
            for subscriber in self._subscribers:
                subscriber.restart()
            self.request_keyframe()

    def attach(self, subscriber: ForwardedTrack) -> None:
        if self.ended:
            subscriber.finish()
            return
        self._subscribers.add(subscriber)
        self.request_keyframe()

    def detach(self, subscriber: ForwardedTrack) -> None:
        self._subscribers.discard(subscriber)

    def request_keyframe(self) -> None:
        if self.kind == "video" and not self.ended:
            self.keyframes.request()

    def decodable_alone(self, keyframe: Packet) -> Packet:
        """`keyframe` with the H.264 parameter sets it lacks, for a subscriber starting with it."""
        if self._h264 is None:
            return keyframe
        data = bytes(keyframe)
        prefix = self._h264.missing_from(split_annexb(data))
        if not prefix:
            return keyframe
        completed = Packet(prefix + data)
        completed.pts = keyframe.pts
        completed.time_base = keyframe.time_base
        completed.is_keyframe = True
        return completed

    def _inspect(self, data: bytes) -> FrameInfo:
        if self.kind == "audio":
            return FrameInfo(keyframe=True)
        if self._h264 is not None:
            units = split_annexb(data)
            self._h264.update(units)
            return inspect_h264(units)
        return inspect_vp8(data)

    async def _send_pli(self) -> None:
        ssrc = self._media_ssrc
        if ssrc is None:
            # The offer named no SSRC: ask whichever source the publisher sent from last.
            sources = sorted(self.receiver.getSynchronizationSources(), key=lambda source: source.timestamp)
            if not sources:
                return
            ssrc = sources[-1].source
        await self.receiver._send_rtcp_pli(ssrc)


@dataclass(eq=False)
class Feed:
    biz_name: str
    room_id: str
    uid: str
    feed_id: str
    publication_id: str
    peer: Peer
    tracks: dict[str, FeedTrack] = field(default_factory=dict)
    on_closed: list[Callable[[Feed, CloseCode], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.peer.on_closed(self._closed)

    async def close(self, code: CloseCode) -> None:
        await self.peer.close(code)

    def _closed(self, code: CloseCode) -> None:
        for track in self.tracks.values():
            track.on_end()
        for handler in self.on_closed:
            handler(self, code)
