"""RTP payloads cut from encoded frames, per codec, without an encoder.

aiortc's encoders have a `pack` for pre-encoded input, but getting one means constructing the encoder,
and the Opus and G.711 encoders open an FFmpeg encoder context in their constructor. The payload
formats themselves are plain functions of the frame: aiortc's VP8 (RFC 7741) and H.264 (RFC 6184,
STAP-A/FU-A) packetisers are class and static methods that touch no encoder state, so they are used
directly; Opus (RFC 7587) and G.711 (RFC 3551) carry one frame per packet as it is.
"""

from __future__ import annotations

from typing import Protocol

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


class Packetizer(Protocol):
    def packetize(self, frame: bytes) -> list[bytes]: ...


class Vp8Packetizer:
    def __init__(self) -> None:
        # Each subscriber's stream numbers its own pictures, as each aiortc sender does.
        self._picture_id = 0

    def packetize(self, frame: bytes) -> list[bytes]:
        payloads = Vp8Encoder._packetize(frame, self._picture_id)
        self._picture_id = (self._picture_id + 1) % (1 << 15)
        return payloads


class H264Packetizer:
    def packetize(self, frame: bytes) -> list[bytes]:
        return H264Encoder._packetize(H264Encoder._split_bitstream(frame))


class WholeFramePacketizer:
    def packetize(self, frame: bytes) -> list[bytes]:
        return [frame]


def packetizer_for(codec: RTCRtpCodecParameters) -> Packetizer:
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        return Vp8Packetizer()
    if mime == "video/h264":
        return H264Packetizer()
    if mime in ("audio/opus", "audio/pcmu", "audio/pcma"):
        return WholeFramePacketizer()
    raise ValueError(f"the relay does not forward {codec.mimeType}")
