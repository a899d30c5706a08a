"""H.264 through the SDK without re-encoding: a bot's own encoder (libx264 here) feeds access units with
FeedVideo on a VIDEO_CODEC_H264 engine; the relay's key-frame requests reach it as OnKeyFrameRequest,
and another SDK session receives the stream and decodes it."""

from __future__ import annotations

import asyncio
import fractions
import uuid

import av
import numpy as np
import pytest
from parley_sdk import (
    CreateRoomParam,
    Engine,
    EngineInitParam,
    JoinRoomParam,
    PublishParam,
    Session,
    SessionListener,
    VideoCodec,
    VideoData,
)
from parley_sdk.operator import App, Operator
from parley_sdk.sources import pattern_frames

from tests.integration.python_sdk.conftest import LOOPBACK
from tests.testing import Platform

pytestmark = pytest.mark.integration

WIDTH, HEIGHT, FPS = 320, 240, 15


class Encoder(SessionListener):
    """The bot's side: an H.264 encoder that makes its next frame a key frame when asked."""

    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.width, self.codec.height, self.codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        self.codec.time_base = fractions.Fraction(1, FPS)
        self.codec.options = {"profile": "baseline", "tune": "zerolatency", "preset": "ultrafast", "g": "300"}
        self.key_frame_requests = 0
        self.key_frame_wanted = False

    def on_key_frame_request(self) -> None:
        self.key_frame_requests += 1
        self.key_frame_wanted = True

    def encode(self, video: VideoData, index: int) -> bytes:
        planes = np.frombuffer(video.i420(), dtype=np.uint8).reshape(HEIGHT * 3 // 2, WIDTH)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = index
        if self.key_frame_wanted:
            frame.pict_type = av.video.frame.PictureType.I
            self.key_frame_wanted = False
        return b"".join(bytes(packet) for packet in self.codec.encode(frame))


class Viewer(SessionListener):
    def __init__(self) -> None:
        self.frames: list[tuple[int, int]] = []

    def on_video(self, video: VideoData, stream_id: str) -> None:
        self.frames.append((video.width, video.height))


async def test_h264_access_units_are_forwarded_as_fed_and_key_frame_requests_reach_the_feeder(
    platform: Platform, operator: Operator, app: App
) -> None:
    encoder, viewer = Encoder(), Viewer()
    h264 = Engine.create()
    h264.init(EngineInitParam(platform.ws_url, video_codec=VideoCodec.VIDEO_CODEC_H264, ice_hosts=LOOPBACK))
    raw = Engine.create()
    raw.init(EngineInitParam(platform.ws_url, ice_hosts=LOOPBACK))
    bot_user = await operator.sign_in(app, f"h264_{uuid.uuid4().hex[:8]}")
    viewer_user = await operator.sign_in(app, f"viewer_{uuid.uuid4().hex[:8]}")
    bot = h264.create_session(encoder)
    watcher = raw.create_session(viewer)
    try:
        await bot.create_room(CreateRoomParam(**vars(bot_user)))
        await bot.publish(PublishParam(enable_video=True, enable_audio=False))
        feeding = asyncio.create_task(feed(bot, encoder))
        await watcher.join_room(JoinRoomParam(bot.room_id, bot.rtoken, **vars(viewer_user)))
        async with asyncio.timeout(30):
            while len(viewer.frames) < 10:
                await asyncio.sleep(0.1)
        feeding.cancel()
    finally:
        await h264.destroy()
        await raw.destroy()
    assert set(viewer.frames) == {(WIDTH, HEIGHT)}
    assert encoder.key_frame_requests > 0


async def feed(session: Session, encoder: Encoder) -> None:
    for index, picture in enumerate(pattern_frames(WIDTH, HEIGHT, FPS)):
        access_unit = encoder.encode(picture, index)
        if access_unit:
            session.feed_video(VideoData(WIDTH, HEIGHT, picture.timestamp, data=access_unit))
        await asyncio.sleep(1 / FPS)
