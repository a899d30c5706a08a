"""A published track as a subscriber's `ForwardedTrack` sees it, for unit tests."""

from __future__ import annotations

from fractions import Fraction

from av.packet import Packet
from parley.relay.v1 import media_pb2, metering_pb2

from services.relay.metering import StreamLabels, StreamMeter


class FakeSource:
    tier = media_pb2.RESOLUTION_TIER_360P

    def __init__(self) -> None:
        self.keyframe_requests = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def decodable_alone(self, keyframe: Packet) -> Packet:
        return keyframe


def packet(data: bytes, *, pts: int = 0, keyframe: bool = False, clock_rate: int = 90000) -> Packet:
    made = Packet(data)
    made.pts = pts
    made.time_base = Fraction(1, clock_rate)
    made.is_keyframe = keyframe
    return made


def meter(kind: media_pb2.MediaKind.ValueType = media_pb2.MEDIA_KIND_VIDEO) -> StreamMeter:
    return StreamMeter(
        StreamLabels(
            biz_name="demo",
            room_id="room",
            uid="bob",
            feed_id="cam",
            role=metering_pb2.STREAM_ROLE_SUBSCRIPTION,
            stream_id="sub",
            kind=kind,
        )
    )
