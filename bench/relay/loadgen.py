"""The load generator both SFUs are measured with: aiortc publishers that send a pre-encoded VP8 clip
(no encoder runs during a measurement) and aiortc subscribers that count what arrives (no decoder
runs), all in this process so publishers and subscribers read the same clock."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from services.core.media.frame_tap import EncodedFrameTap, tap_receiver
from services.core.media.gathering import gathering_on

FPS = 30
VIDEO_CLOCK = 90000
TICKS_PER_FRAME = VIDEO_CLOCK // FPS
TIME_BASE = Fraction(1, VIDEO_CLOCK)


@dataclass
class Clip:
    """Encoded VP8 frames and how many RTP packets aiortc's packetizer makes of each (the relay
    repacketizes with the same packetizer, Janus forwards packets as they come)."""

    frames: list[bytes]
    packets: list[int]
    width: int
    height: int

    @property
    def bitrate(self) -> float:
        return sum(len(frame) for frame in self.frames) * 8 * FPS / len(self.frames)


def encode_clip(
    *, seconds: float = 4.0, width: int = 640, height: int = 480, bitrate: int = 1_500_000
) -> Clip:
    """A few seconds of a moving, noisy picture through libvpx at `bitrate`, key frame first (and so
    once per loop, which is how late subscribers get their first key frame: the clip cannot answer a
    PLI). Noise keeps the encoder at its target bitrate instead of far under it."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.gop_size = int(seconds * FPS)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    count = int(seconds * FPS)
    frames: list[bytes] = []
    noise = os.urandom(width * height // 4)
    for index in range(count):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma = bytearray(((x + 4 * index) * 255 // width) & 0xFF for x in range(width)) * height
        # A band of noise that moves down the picture keeps every frame costly to code.
        start = (index * width * 8) % (width * height - len(noise))
        luma[start : start + len(noise)] = noise[index % 7 :] + noise[: index % 7]
        for plane, data in zip(frame.planes, (bytes(luma), None, None), strict=True):
            if data is None:
                data = bytes([128]) * (plane.width * plane.height)
                rows = [data[r * plane.width : (r + 1) * plane.width] for r in range(plane.height)]
            else:
                rows = [data[r * width : (r + 1) * width] for r in range(height)]
            padding = bytes(plane.line_size - plane.width)
            plane.update(b"".join(row + padding for row in rows))
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        frames.extend(bytes(packet) for packet in codec.encode(frame))
    frames.extend(bytes(packet) for packet in codec.encode(None))
    packetizer = Vp8Encoder()
    packets = [len(packetizer.pack(_packet(data, 0))[0]) for data in frames]
    return Clip(frames=frames, packets=packets, width=width, height=height)


def _packet(data: bytes, pts: int) -> av.Packet:
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = TIME_BASE
    return packet


class ClipTrack(MediaStreamTrack):
    """The clip, looped at 30 frames/s with ever-increasing timestamps; records when each frame left."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self._index = 0
        self._start: float | None = None
        # pts (90 kHz) -> (perf_counter when handed to the sender, RTP packets it makes)
        self.sent: dict[int, tuple[float, int]] = {}

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.perf_counter()
        delay = self._start + self._index / FPS - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        position = self._index % len(self._clip.frames)
        pts = self._index * TICKS_PER_FRAME
        self._index += 1
        self.sent[pts] = (time.perf_counter(), self._clip.packets[position])
        return _packet(self._clip.frames[position], pts)


class Peer:
    def __init__(self) -> None:
        # An explicit empty list: aiortc's default names a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def local_sdp(self, description: RTCSessionDescription) -> str:
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(description)
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        await self.pc.close()


class Publisher(Peer):
    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.track = ClipTrack(clip)
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType in ("video/VP8", "video/rtx")
            ]
        )

    async def offer(self) -> str:
        return await self.local_sdp(await self.pc.createOffer())

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@dataclass
class Arrivals:
    """Every RTP packet a subscriber received: (perf_counter, payload type, timestamp, sequence, bytes)."""

    packets: list[tuple[float, int, int, int, int]] = field(default_factory=list)


def count_packets(receiver: RTCRtpReceiver, arrivals: Arrivals) -> None:
    """Record each packet as it arrives, then let the stock receiver go on (SRTP is already off; it
    still sends receiver reports and NACKs, as a real subscriber would), with no decoder behind it."""
    handle = receiver._handle_rtp_packet
    record = arrivals.packets.append
    clock = time.perf_counter

    async def counted(packet: RtpPacket, arrival_time_ms: int) -> None:
        record((clock(), packet.payload_type, packet.timestamp, packet.sequence_number, len(packet.payload)))
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = counted  # type: ignore[method-assign]
    tap_receiver(receiver, "video", EncodedFrameTap(lambda codec, frame: None, lambda: None))


class Subscriber(Peer):
    def __init__(self) -> None:
        super().__init__()
        self.arrivals = Arrivals()

    async def offer(self) -> str:
        """For Parley: the subscriber offers recvonly video."""
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        count_packets(transceiver.receiver, self.arrivals)
        return await self.local_sdp(await self.pc.createOffer())

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def answer(self, offer: str) -> str:
        """For Janus: the SFU offers, the subscriber answers."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                count_packets(transceiver.receiver, self.arrivals)
        return await self.local_sdp(await self.pc.createAnswer())


def align(sent: dict[int, tuple[float, int]], arrivals: list[tuple[float, int, int, int, int]]) -> int | None:
    """The constant an SFU added to the publisher's RTP timestamps for this subscriber (both rewrite
    them). Arrival times cannot tell it: Parley holds each frame until the next one starts (aiortc's
    jitter buffer), so delays near one frame interval are real. The clip's packets per frame can: each
    candidate maps the first frame received onto one of the frames sent in the 4 s before it arrived,
    and the one under which most frames arrive with exactly the packets they were sent with wins."""
    if not arrivals:
        return None
    sequences: dict[int, set[int]] = {}
    for _arrival, _pt, timestamp, sequence, _size in arrivals:
        sequences.setdefault(timestamp, set()).add(sequence)
    first_at, _pt, first_ts, _seq, _size = arrivals[0]
    candidates = sorted((pts for pts, (at, _n) in sent.items() if at <= first_at), reverse=True)[:120]
    checked = list(sequences.items())[:300]
    best, best_score = None, -1
    for pts in candidates:
        offset = (first_ts - pts) % 2**32
        score = sum(
            1
            for ts, seqs in checked
            if (mapped := (ts - offset) % 2**32) in sent and sent[mapped][1] == len(seqs)
        )
        if score > best_score:
            best, best_score = offset, score
    return best


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def analyse(publishers: list[tuple[Publisher, list[Subscriber]]], t0: float, t1: float) -> dict[str, Any]:
    """Forwarded packets, loss and forwarding delay of one steady window [t0, t1]."""
    forwarded = 0
    expected = received = 0
    frames_expected = frames_received = 0
    delays: list[float] = []
    unaligned = 0
    for publisher, subscribers in publishers:
        sent = publisher.track.sent
        # Frames sent in the window; the last 200 ms are left out so each had time to arrive.
        window = {pts: value for pts, value in sent.items() if t0 <= value[0] < t1 - 0.2}
        for subscriber in subscribers:
            packets = subscriber.arrivals.packets
            forwarded += sum(1 for p in packets if t0 <= p[0] < t1)
            media_pt = max(
                {p[1] for p in packets} or {0}, key=lambda pt: sum(1 for p in packets if p[1] == pt)
            )
            media = [p for p in packets if p[1] == media_pt]
            offset = align(sent, media)
            frames_expected += len(window)
            expected += sum(n for _at, n in window.values())
            if offset is None:
                unaligned += 1
                continue
            seen: dict[int, set[int]] = {}
            last: dict[int, float] = {}
            for arrival, _pt, timestamp, sequence, _size in media:
                pts = (timestamp - offset) % 2**32
                if pts in window:
                    seen.setdefault(pts, set()).add(sequence)
                    last[pts] = max(arrival, last.get(pts, 0.0))
            for pts, sequences in seen.items():
                received += min(len(sequences), window[pts][1])
                if len(sequences) >= window[pts][1]:
                    frames_received += 1
                    delays.append((last[pts] - window[pts][0]) * 1000)
    duration = t1 - t0
    return {
        "window_s": round(duration, 2),
        "forwarded_packets": forwarded,
        "forwarded_packets_per_s": round(forwarded / duration, 1),
        "loss_percent": round(100 * (1 - received / expected), 3) if expected else None,
        "frames_complete_percent": round(100 * frames_received / frames_expected, 2)
        if frames_expected
        else None,
        "delay_ms_p50": round(percentile(delays, 0.5), 2),
        "delay_ms_p99": round(percentile(delays, 0.99), 2),
        "subscribers_unaligned": unaligned,
    }


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
