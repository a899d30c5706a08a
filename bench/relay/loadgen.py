"""The load generator both SFUs are measured with: aiortc publishers that send a pre-encoded VP8 clip
(no encoder runs during a measurement) and aiortc subscribers that count what arrives (no decoder
runs), all in this process so publishers and subscribers read the same clock.

A subscriber records its packets in one of two ways (`Subscriber(recorder=...)`):

- `headers` (the default): `HeaderRecorder` reads arrival, payload type, timestamp and sequence number
  from the RTP header of each SRTP datagram as the socket delivers it (SRTP leaves the header in clear)
  and drops the payload without unprotecting it; ICE, DTLS, SRTCP, RTX and whatever arrives before
  DTLS is up keep aiortc's path; the receiver's own statistics and NACK generator are fed from the
  headers and a REMB goes out once a second, so the SFU gets the receiver reports, NACKs and REMBs it
  got before. Its sockets get a 2 MiB receive buffer;
- `aiortc`: every packet through aiortc's whole receive path (the socket's STUN check, a queue hop, the
  DTLS task, SRTP unprotect, parsing, jitter buffer): the generator before 2026-12-06, which ran out of
  CPU before either SFU at 4 x 16 (bench/README.md, "A cheaper load generator").
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from aioice.ice import StunProtocol
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci

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


# How far behind its schedule a clip track still sends every frame it missed, back to back; further
# behind, it skips them, as a camera and encoder that cannot keep up drop frames. A generator kept off its
# core by other processes falls behind; sent at once, 30 s of backlog reached the relay at over 20 Mbit/s
# and its flood guard rightly closed the publication (5009) and with it every subscription of the feed:
# the 4x16 window that forwarded nothing and the ramp's "no feed" (bench/README.md). Half a second is
# ~100 KB, far under the flood guard's 20 Mbit/s over 2 s.
MAX_CATCH_UP_S = 0.5


class ClipTrack(MediaStreamTrack):
    """The clip, looped at 30 frames/s with ever-increasing timestamps; records when each frame left,
    and when it skipped frames it was too late for (`MAX_CATCH_UP_S`)."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self._index = 0
        self._start: float | None = None
        # pts (90 kHz) -> (perf_counter when handed to the sender, RTP packets it makes)
        self.sent: dict[int, tuple[float, int]] = {}
        # (perf_counter, frames skipped then): each time the generator fell too far behind.
        self.skipped: list[tuple[float, int]] = []

    async def recv(self) -> av.Packet:
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        delay = self._start + self._index / FPS - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -MAX_CATCH_UP_S:
            # On with the frame due now, its timestamp the time it was due (a camera's capture time).
            due = int((now - self._start) * FPS)
            self.skipped.append((now, due - self._index))
            self._index = due
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
    """Every RTP packet a subscriber received: (perf_counter, payload type, timestamp, sequence, bytes:
    the payload's on aiortc's path, the SRTP datagram's from `HeaderRecorder`; no figure reads them)."""

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


# aiortc 1.16's receiver state the header recorder feeds (name-mangled private attributes).
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"
RECEIVER_NACK = "_RTCRtpReceiver__nack_generator"
RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
# RFC 7983: SRTP and SRTCP datagrams start with a byte in 128-191; RTCP's second byte (packet type) is
# 192-223, RTP's (marker bit and payload type) is outside that range for the dynamic payload types.
_FIRST_MEDIA_BYTE, _LAST_MEDIA_BYTE = 128, 191
_RTCP_TYPES = range(192, 224)
_SEQ_TS_SSRC = struct.Struct("!HII")
# A subscriber socket's receive buffer: ~2 s of a 1.5 Mbit/s stream (the kernel counts ~2.3 KiB per
# loopback datagram), so a generator that other processes keep off its core for a moment (the bench
# machine is shared) reads those datagrams late, which its loop lag shows, instead of losing them. The
# default (rmem_default, 208 KiB) held ~0.4 s; the kernel caps this at net.core.rmem_max.
SUBSCRIBER_RCVBUF = 2 * 1024 * 1024
# aiortc's REMB estimator reports at most once a second in a steady stream (`RemoteBitrateEstimator`).
REMB_INTERVAL_S = 1.0
RECORDERS = ("headers", "aiortc")


class _Header:
    """The fields of one RTP header that aiortc's `StreamStatistics.add` and `NackGenerator.add` read
    (one object per subscriber, refilled per packet: both read it synchronously and keep nothing)."""

    __slots__ = ("sequence_number", "ssrc", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0
        self.ssrc = 0


class HeaderRecorder:
    """Records a subscriber's RTP packets from their headers where the socket delivers them, without SRTP.

    The measurement needs arrival time, payload type, RTP timestamp and sequence number per packet: SRTP
    leaves the RTP header in clear, so they are read from the datagram and its encrypted payload dropped.
    What a subscriber says back to the SFU is kept, from aiortc's own code fed with the header fields:
    the receiver's `StreamStatistics` (its RTCP task sends the receiver reports from them as before) and
    its `NackGenerator` (a NACK when a sequence gap opens). A REMB goes out once a second, as aiortc's
    estimator sends them in a steady stream, carrying the bitrate received over that second instead of
    the estimator's figure: aiortc's estimator walks a bucket per elapsed millisecond per receiver, and
    the value reaches nothing (whatever an SFU passes upstream, the clip is pre-encoded: at its sender a
    REMB sets a target bitrate no encoder uses). No PLI: aiortc's come from its jitter buffer, which sees
    no payloads here (and the looped clip cannot answer one: its key frame comes once per loop).

    STUN (ICE consent), DTLS, SRTCP (the SFU's sender reports), RTX (its original sequence number is in
    the encrypted payload) and anything before DTLS is connected or while aiortc still has datagrams
    queued keep aiortc's path, where `count_packets` records them, so packets are recorded in order."""

    def __init__(self, receiver: RTCRtpReceiver, arrivals: Arrivals) -> None:
        self._receiver = receiver
        self._state = vars(receiver)
        self._dtls = receiver.transport
        self._connection = self._dtls.transport._connection
        self._queued = self._connection._queue
        self._record = arrivals.packets.append
        self._header = _Header()
        # payload type -> codec of the media payload types; RTX's go to aiortc (set at the first packet:
        # the receiver learns its codecs when the remote description is applied).
        self._media: dict[int, Any] | None = None
        self._rtx: frozenset[int] = frozenset()
        self._remb_bytes = 0
        self._remb_since = 0.0
        self._replies: set[asyncio.Task[None]] = set()
        # RTP packets recorded here rather than on aiortc's path.
        self.packets = 0

    def install(self) -> None:
        """Take the datagrams of every socket the connection gathered (call after gathering)."""
        for protocol in self._connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SUBSCRIBER_RCVBUF)
            self._take_over(protocol)

    def _take_over(self, protocol: StunProtocol) -> None:
        stock = protocol.datagram_received

        def datagram_received(data: bytes, addr: Any) -> None:
            if not self.received(data):
                stock(data, addr)

        # uvloop's and asyncio's datagram transports look the handler up per datagram.
        protocol.datagram_received = datagram_received  # type: ignore[method-assign,assignment]

    def received(self, data: bytes) -> bool:
        """Record `data` if it is an RTP packet of a connected transport; False leaves it to aiortc."""
        arrival = time.perf_counter()
        if (
            len(data) < 12
            or not _FIRST_MEDIA_BYTE <= data[0] <= _LAST_MEDIA_BYTE
            or data[1] in _RTCP_TYPES
            or self._dtls._state != State.CONNECTED
            or not self._queued.empty()
        ):
            return False
        payload_type = data[1] & 0x7F
        if self._media is None:
            self._learn_codecs(arrival)
        if payload_type in self._rtx:
            return False
        sequence, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        self._record((arrival, payload_type, timestamp, sequence, len(data)))
        self.packets += 1
        codec = self._media.get(payload_type)  # type: ignore[union-attr]
        if codec is None:
            # aiortc drops a packet of a payload type it did not negotiate, after recording it above.
            return True
        header = self._header
        header.sequence_number, header.timestamp, header.ssrc = sequence, timestamp, ssrc
        streams = self._state[RECEIVER_STREAMS]
        stream = streams.get(ssrc)
        if stream is None:
            stream = streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(header)
        nack = self._state[RECEIVER_NACK]
        if nack is not None and nack.add(header):
            self._reply(self._receiver._send_rtcp_nack(ssrc, sorted(nack.missing)))
        self._remb_bytes += len(data)
        if arrival - self._remb_since >= REMB_INTERVAL_S:
            self._remb(arrival, ssrc)
        return True

    def _learn_codecs(self, now: float) -> None:
        codecs = self._state[RECEIVER_CODECS]
        self._media = {pt: codec for pt, codec in codecs.items() if not is_rtx(codec)}
        self._rtx = frozenset(pt for pt, codec in codecs.items() if is_rtx(codec))
        self._remb_since = now

    def _remb(self, now: float, ssrc: int) -> None:
        """A REMB with the bitrate received since the last one."""
        bitrate = round(self._remb_bytes * 8 / (now - self._remb_since))
        self._remb_bytes, self._remb_since = 0, now
        rtcp_ssrc = self._state[RECEIVER_RTCP_SSRC]
        if rtcp_ssrc is not None:
            fci = pack_remb_fci(bitrate, [ssrc])
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
            self._reply(self._receiver._send_rtcp(packet))

    def _reply(self, send: Any) -> None:
        # RTCP out (about once a second per subscriber): a task, as aiortc's own receiver awaits it.
        task = asyncio.ensure_future(send)
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)


class Subscriber(Peer):
    def __init__(self, recorder: str = "headers") -> None:
        super().__init__()
        if recorder not in RECORDERS:
            raise ValueError(f"recorder {recorder!r}: one of {RECORDERS}")
        self.recorder = recorder
        self.arrivals = Arrivals()
        self.header_recorder: HeaderRecorder | None = None

    async def local_sdp(self, description: RTCSessionDescription) -> str:
        sdp = await super().local_sdp(description)
        if self.recorder == "headers":
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    self.header_recorder = HeaderRecorder(transceiver.receiver, self.arrivals)
                    self.header_recorder.install()
        return sdp

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
