"""The relay's own handling of a publisher's RTP packet, in place of aiortc's receive chain.

aiortc's way for an RTP packet (`RTCDtlsTransport._handle_rtp_data` → `RtpPacket.parse` →
`RTCRtpReceiver._handle_rtp_packet`) builds every header extension the packet carries into a
`HeaderExtensions`, creates two coroutines, reads a `datetime` for the receiver's source list and runs the
REMB estimator on every packet: together about half of what a publisher's packet costs the relay (profile
in bench/README.md, "The inbound path"). `PublisherRtp` does the same work for what the relay uses:

- the fixed header with one `struct.unpack_from`, checked as aiortc checks it (version, CSRCs, extension
  and padding lengths: a packet aiortc would refuse is dropped here too), and of the extensions only
  abs-send-time, the one the REMB estimator reads; the relay routes by SSRC and payload type (aiortc's
  router reads no extension) and forwards payloads, not extensions. Where services/relay/_fastsend.c is
  built and the relay's `compiled_send` setting is on, the same parse runs in C (`rtp_parser`);
- the receiver's own state, used as its `_handle_rtp_packet` uses it: statistics for receiver reports,
  RTX unwrapping, the NACK generator, depayloading (VP8's descriptor skipped by its length, the same bytes
  as aiortc's without its descriptor object), the jitter buffer, PLIs, timestamp mapping and the
  frame tap (its `__decoder_queue`), all with the receiver's own objects, so getStats, reports and the
  relay's PLIs see what they saw before;
- REMB estimated per frame rather than per packet: the estimator gets one sample per frame, the frame's
  last packet's arrival and abs-send-time with the bytes of all its packets (see `_remb`);
- the source list (`getSynchronizationSources`, which the relay's PLI reads when the offer named no SSRC)
  stamped from a wall clock read at most every `SOURCE_STAMP_MS`, not a `datetime` per packet;
- RTCP replies (NACK, PLI, REMB) sent through the receiver's coroutines with `run_now`, so only a packet
  that causes one creates a coroutine.

aiortc 1.16's private attribute names used here are listed below and checked by
tests/unit/relay/test_receive.py, so an upgrade that renames one fails loudly.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from functools import partial
from time import time
from types import ModuleType
from typing import Any, cast

from aiortc.codecs import depayload, is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensions, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from services.relay.rate_window import speed_up
from services.relay.run_now import run_now

ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"
CODECS = "_RTCRtpReceiver__codecs"
DECODER_ERROR = "_RTCRtpReceiver__decoder_error"
DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
KIND = "_RTCRtpReceiver__kind"
NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
REMOTE_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
EXTENSION_IDS = "_HeaderExtensionsMap__ids"

# The source list keeps sources heard in the last 10 s and the relay asks it for the latest one; a stamp
# 100 ms old answers both as a fresh one would, for one clock read per 100 ms instead of per packet.
SOURCE_STAMP_MS = 100

_FIXED_HEADER = struct.Struct("!BBHLL")
_FIXED_HEADER_LENGTH = 12
_EXTENSION_HEADER = struct.Struct("!HH")
_ONE_BYTE_PROFILE = 0xBEDE
_TWO_BYTE_PROFILE = 0x1000
# Packets carry no extension the relay reads but abs-send-time (returned apart): every parsed packet
# shares this empty set, which nothing in the receive path writes to.
_NO_EXTENSIONS = HeaderExtensions()
# A packet's bytes and the abs-send-time extension id (None: not negotiated) → the packet and its send time.
RtpParser = Callable[[bytes, int | None], tuple[RtpPacket, int | None]]
# What a codec's payloads are to the path (`ReceiverPath._form_of`).
_RTX = "rtx"
_VP8 = "vp8"
_OTHER = "other"


def parse_rtp(data: bytes, abs_send_time_id: int | None) -> tuple[RtpPacket, int | None]:
    """The packet and its abs-send-time; ValueError where `RtpPacket.parse` raises one."""
    length = len(data)
    if length < _FIXED_HEADER_LENGTH:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, marker_type, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    csrc_count = first & 0x0F
    position = _FIXED_HEADER_LENGTH + 4 * csrc_count
    if length < position:
        raise ValueError("RTP packet has truncated CSRC")
    packet = RtpPacket.__new__(RtpPacket)
    packet.version = 2
    packet.marker = marker_type >> 7
    packet.payload_type = marker_type & 0x7F
    packet.sequence_number = sequence_number
    packet.timestamp = timestamp
    packet.ssrc = ssrc
    packet.csrc = (
        [] if not csrc_count else list(struct.unpack_from(f"!{csrc_count}L", data, _FIXED_HEADER_LENGTH))
    )
    packet.extensions = _NO_EXTENSIONS
    abs_send_time = None
    if first & 0x10:
        if length < position + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, words = _EXTENSION_HEADER.unpack_from(data, position)
        position += 4
        end = position + 4 * words
        if length < end:
            raise ValueError("RTP packet has truncated extension value")
        if abs_send_time_id:
            abs_send_time = _find_abs_send_time(data, position, end, profile, abs_send_time_id)
        position = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > length - position:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[position:-padding]
    else:
        packet.padding_size = 0
        packet.payload = data[position:]
    return packet, abs_send_time


def _find_abs_send_time(data: bytes, position: int, end: int, profile: int, wanted: int) -> int | None:
    """RFC 8285 elements between `position` and `end`, walked until abs-send-time (3 bytes) turns up."""
    if profile == _ONE_BYTE_PROFILE:
        while position < end:
            byte = data[position]
            if not byte:
                position += 1
                continue
            size = (byte & 0x0F) + 1
            position += 1
            if position + size > end:
                raise ValueError("RTP one-byte header extension value is truncated")
            if byte >> 4 == wanted and size == 3:
                return int.from_bytes(data[position : position + 3], "big")
            position += size
    elif profile == _TWO_BYTE_PROFILE:
        while position < end:
            if not data[position]:
                position += 1
                continue
            if position + 2 > end:
                raise ValueError("RTP two-byte header extension is truncated")
            element_id, size = data[position], data[position + 1]
            position += 2
            if position + size > end:
                raise ValueError("RTP two-byte header extension value is truncated")
            if element_id == wanted and size == 3:
                return int.from_bytes(data[position : position + 3], "big")
            position += size
    return None


def vp8_descriptor_length(payload: bytes) -> int:
    """The length of the VP8 payload descriptor (RFC 7741 4.2) at the start of `payload`; ValueError where
    aiortc's `VpxPayloadDescriptor.parse` raises one."""
    length = len(payload)
    if not length:
        raise ValueError("VPX descriptor is too short")
    if not payload[0] & 0x80:
        return 1
    if length < 2:
        raise ValueError("VPX descriptor has truncated extended bits")
    extended = payload[1]
    position = 2
    if extended & 0x80:
        if length < position + 1:
            raise ValueError("VPX descriptor has truncated PictureID")
        position += 2 if payload[position] & 0x80 else 1
        if length < position:
            raise ValueError("VPX descriptor has truncated long PictureID")
    if extended & 0x40:
        if length < position + 1:
            raise ValueError("VPX descriptor has truncated TL0PICIDX")
        position += 1
    if extended & 0x30:
        if length < position + 1:
            raise ValueError("VPX descriptor has truncated T/K")
        position += 1
    return position


def count(statistics: StreamStatistics, packet: RtpPacket) -> None:
    """`statistics.add(packet)`; for the packet after the highest so far (nearly every packet) without its
    calls, with the same counters, the same clock and the same jitter arithmetic (RFC 3550 A.8)."""
    sequence_number = packet.sequence_number
    max_seq = statistics.max_seq
    if max_seq is None or sequence_number != (max_seq + 1) & 0xFFFF:
        statistics.add(packet)
        return
    statistics.packets_received += 1
    arrival = int(time() * statistics._clockrate)
    if sequence_number < max_seq:
        statistics.cycles += 1 << 16
    statistics.max_seq = sequence_number
    timestamp = packet.timestamp
    last_timestamp = statistics._last_timestamp
    if timestamp != last_timestamp and statistics.packets_received > 1:
        assert statistics._last_arrival is not None and last_timestamp is not None
        diff = abs((arrival - statistics._last_arrival) - (timestamp - last_timestamp))
        statistics._jitter_q4 += diff - ((statistics._jitter_q4 + 8) >> 4)
    statistics._last_arrival = arrival
    statistics._last_timestamp = timestamp


class ReceiverPath:
    """What happens to one receiver's packets (aiortc's `_handle_rtp_packet`, minus unread work)."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self.receiver = receiver
        self._state = vars(receiver)
        # Bytes of the frame so far, for the estimator's one sample per frame.
        self._frame_bytes = 0
        # The RTP timestamp, send time, arrival and SSRC of the frame's last packet so far, until its marker.
        self._unmarked: tuple[int, int, int, int] | None = None
        # By codec object: _RTX, _VP8 or _OTHER.
        self._forms: dict[int, str] = {}
        estimator = self._state[REMOTE_BITRATE_ESTIMATOR]
        if isinstance(estimator, RemoteBitrateEstimator):
            speed_up(estimator)

    def handle(
        self, packet: RtpPacket, abs_send_time: int | None, arrival_ms: int, stamp: datetime.datetime
    ) -> None:
        receiver = self.receiver
        if not receiver._enabled:
            return
        state = self._state
        if abs_send_time is not None and state[REMOTE_BITRATE_ESTIMATOR] is not None:
            self._remb(packet, abs_send_time, arrival_ms)
        ssrc = packet.ssrc
        state[ACTIVE_SSRC][ssrc] = stamp
        codecs = state[CODECS]
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = state[REMOTE_STREAMS]
        statistics = streams.get(ssrc)
        if statistics is None:
            statistics = streams[ssrc] = StreamStatistics(codec.clockRate)
        count(statistics, packet)
        form = self._forms.get(id(codec)) or self._form_of(codec)
        if form is _RTX:
            original_ssrc = state[RTX_SSRC].get(ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2:
                return
            if not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
            form = self._forms.get(id(codec)) or self._form_of(codec)
        nack_generator = state[NACK_GENERATOR]
        if nack_generator is not None:
            # The next packet in order with nothing missing: all `NackGenerator.add` would do is move
            # `max_seq` on (its loop and `truncate` find nothing), so only that is done.
            sequence_number = packet.sequence_number
            max_seq = nack_generator.max_seq
            in_order = max_seq is not None and sequence_number == (max_seq + 1) & 0xFFFF
            if in_order and not nack_generator.missing:
                nack_generator.max_seq = sequence_number
            elif nack_generator.add(packet):
                run_now(receiver._send_rtcp_nack(packet.ssrc, sorted(nack_generator.missing)))
        payload = packet.payload
        try:
            if not payload:
                packet._data = b""  # type: ignore[attr-defined]
            elif form is _VP8:
                packet._data = payload[vp8_descriptor_length(payload) :]  # type: ignore[attr-defined]
            else:
                packet._data = depayload(codec, payload)  # type: ignore[attr-defined]
        except ValueError:
            return
        pli_flag, encoded_frame = state[JITTER_BUFFER].add(packet)
        decoder_error = state[DECODER_ERROR]
        if decoder_error.is_set():
            decoder_error.clear()
            if state[KIND] == "video":
                pli_flag = True
        if pli_flag:
            run_now(receiver._send_rtcp_pli(packet.ssrc))
        if encoded_frame is not None and state[DECODER_THREAD]:
            encoded_frame.timestamp = state[TIMESTAMP_MAPPER].map(encoded_frame.timestamp)
            state[DECODER_QUEUE].put((codec, encoded_frame))

    def _form_of(self, codec: RTCRtpCodecParameters) -> str:
        """RTX, VP8 or another codec: read once per codec, as codecs are fixed once negotiated and their
        `name` is a property that splits the MIME type (aiortc's `is_rtx` reads it per packet)."""
        form = self._forms[id(codec)] = _RTX if is_rtx(codec) else _VP8 if codec.name == "VP8" else _OTHER
        return form

    def _remb(self, packet: RtpPacket, abs_send_time: int, arrival_ms: int) -> None:
        """Feed the estimator once per frame, on its marker packet, with the frame's bytes.

        The estimator (aiortc's port of WebRTC's) groups packets sent within 5 ms and compares the
        groups' send and arrival spacing using each group's last packet, and counts bytes over a 1 s
        window: a frame's last packet with the frame's bytes gives it the same spacing between frames and
        the same byte count, for one sample instead of one per packet (a paced frame spread over more than
        5 ms counts as one group rather than several). A frame whose marker packet does not come (lost,
        or a sender that sets none) is ended by the next frame's first packet, as the jitter buffer ends it.
        """
        unmarked = self._unmarked
        if unmarked is not None and unmarked[0] != packet.timestamp:
            self._sample(*unmarked[1:])
        self._frame_bytes += len(packet.payload) + packet.padding_size
        if packet.marker:
            self._sample(abs_send_time, arrival_ms, packet.ssrc)
        else:
            self._unmarked = (packet.timestamp, abs_send_time, arrival_ms, packet.ssrc)

    def _sample(self, abs_send_time: int, arrival_ms: int, ssrc: int) -> None:
        size, self._frame_bytes, self._unmarked = self._frame_bytes, 0, None
        remb = self._state[REMOTE_BITRATE_ESTIMATOR].add(
            abs_send_time=abs_send_time, arrival_time_ms=arrival_ms, payload_size=size, ssrc=ssrc
        )
        rtcp_ssrc = self._state[RTCP_SSRC]
        if rtcp_ssrc is not None and remb is not None:
            fci = pack_remb_fci(*remb)
            run_now(
                self.receiver._send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
                )
            )


def rtp_parser(compiled: ModuleType | None) -> RtpParser:
    """`parse_rtp`, from C where `compiled` (services.relay._fastsend) is given: the same packets, fields and
    errors (tests/unit/relay/test_receive.py runs both), for about a fifth of the handling's instructions."""
    if compiled is None:
        return parse_rtp
    # A partial (C): no Python frame per packet.
    return partial(compiled.parse_rtp, RtpPacket, _NO_EXTENSIONS)


class PublisherRtp:
    """The RTP side of one DTLS transport: parse, route by SSRC/payload type, hand to the receiver's path."""

    def __init__(self, dtls: RTCDtlsTransport, compiled: ModuleType | None = None) -> None:
        self._dtls = dtls
        self._parse = rtp_parser(compiled)
        self._paths: dict[int, ReceiverPath] = {}
        self._stamp_ms = -SOURCE_STAMP_MS
        self._stamp = datetime.datetime.now(datetime.UTC)

    def handle(self, data: bytes, arrival_ms: int) -> None:
        dtls = self._dtls
        extension_ids: Any = getattr(dtls._rtp_header_extensions_map, EXTENSION_IDS)
        try:
            packet, abs_send_time = self._parse(data, extension_ids.abs_send_time)
        except ValueError:
            return
        # The router's receivers are the peer connection's RTCRtpReceivers (typed as a protocol there).
        receiver = cast(RTCRtpReceiver | None, dtls._rtp_router.route_rtp(packet))
        if receiver is None:
            return
        path = self._paths.get(id(receiver))
        if path is None or path.receiver is not receiver:
            path = self._paths[id(receiver)] = ReceiverPath(receiver)
        if arrival_ms - self._stamp_ms >= SOURCE_STAMP_MS:
            self._stamp_ms = arrival_ms
            self._stamp = datetime.datetime.now(datetime.UTC)
        path.handle(packet, abs_send_time, arrival_ms, self._stamp)
