"""Real encoded video for the relay's unit tests, made with the same FFmpeg encoders clients use."""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
from av import VideoFrame
from av.video.codeccontext import VideoCodecContext


def encode(
    codec: str, width: int, height: int, *, frames: int = 3, options: dict[str, str] | None = None
) -> list[bytes]:
    """`frames` frames of a grey picture: a key frame, then delta frames."""
    context = cast(VideoCodecContext, av.CodecContext.create(codec, "w"))
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 30)
    context.framerate = Fraction(30, 1)
    context.gop_size = 1000
    context.options = options or {}
    packets = []
    for index in range(frames):
        frame = VideoFrame(width=width, height=height, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([96 + index]) * plane.buffer_size)
        frame.pts = index
        packets += context.encode(frame)
    packets += context.encode(None)
    return [bytes(packet) for packet in packets]
