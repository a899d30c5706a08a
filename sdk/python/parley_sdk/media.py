"""The SDK's media sources and sinks on aiortc: what FeedAudio / FeedVideo put on the wire and what
OnAudio / OnVideo get (seed 002 sections 3.4 and 6.4)."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

# The seed paces audio in 10 ms periods (seed 002 3.4: "每 10ms 发送一次音频数据").
AUDIO_PERIOD_S = 0.010
VIDEO_CLOCK = fractions.Fraction(1, 90000)
BYTES_PER_SAMPLE = 2


class VideoCodec(IntEnum):
    """Seed 002 RtcVideoCodec: what FeedVideo takes and OnVideo gives."""

    VIDEO_CODEC_YUV420P = 0  # raw I420 frames, encoded (VP8) by the SDK
    VIDEO_CODEC_H264 = 1  # H.264 Annex B access units (NALUs with start codes), sent as they are


@dataclass(frozen=True)
class AudioFormat:
    """Seed 002 RtcAudioFormat: 16 kHz mono (the default) or 48 kHz stereo, 16-bit PCM."""

    sample_rate: int = 16000
    channels: int = 1

    def __post_init__(self) -> None:
        if (self.sample_rate, self.channels) not in ((16000, 1), (48000, 2)):
            raise ValueError("PCM is 16 kHz mono or 48 kHz stereo (seed 002 3.4)")

    @property
    def bytes_per_period(self) -> int:
        return int(self.sample_rate * AUDIO_PERIOD_S) * self.channels * BYTES_PER_SAMPLE

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"


@dataclass(frozen=True)
class AudioData:
    """Seed 002 RtcAudioData: interleaved signed 16-bit little-endian PCM, timestamp in milliseconds."""

    data: bytes
    timestamp: int = 0

    @property
    def length(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class VideoData:
    """Seed 002 RtcVideoData. I420: `data_y`, `data_u`, `data_v` with their strides; H.264: `data` (one
    access unit, Annex B). Timestamp in milliseconds."""

    width: int
    height: int
    timestamp: int = 0
    data_y: bytes = b""
    data_u: bytes = b""
    data_v: bytes = b""
    stride_y: int = 0
    stride_u: int = 0
    stride_v: int = 0
    data: bytes = b""

    @property
    def length(self) -> int:
        return len(self.data)

    @classmethod
    def from_i420(cls, frame: bytes, width: int, height: int, timestamp: int = 0) -> VideoData:
        """One contiguous I420 buffer (Y plane, then U, then V) split into the seed's planes."""
        luma = width * height
        chroma = (width // 2) * (height // 2)
        if len(frame) != luma + 2 * chroma:
            raise ValueError(
                f"an I420 frame of {width}x{height} is {luma + 2 * chroma} bytes, not {len(frame)}"
            )
        return cls(
            width,
            height,
            timestamp,
            data_y=frame[:luma],
            data_u=frame[luma : luma + chroma],
            data_v=frame[luma + chroma :],
            stride_y=width,
            stride_u=width // 2,
            stride_v=width // 2,
        )

    def i420(self) -> bytes:
        """The planes without stride padding, as one buffer."""
        planes = (
            (self.data_y, self.stride_y, 1),
            (self.data_u, self.stride_u, 2),
            (self.data_v, self.stride_v, 2),
        )
        rows: list[bytes] = []
        for plane, stride, sub in planes:
            row_bytes, row_count = self.width // sub, self.height // sub
            rows.extend(plane[row * stride : row * stride + row_bytes] for row in range(row_count))
        return b"".join(rows)


class PcmQueueTrack(MediaStreamTrack):
    """An audio track fed with PCM of any length: the SDK's internal queue (seed 002 3.4: "按照 10ms 的间隔
    发送"). Every 10 ms it sends the next 10 ms of the queue, or silence when the queue is empty, so a bot
    can feed a whole TTS sentence at once and cut it off with `clear`."""

    kind = "audio"

    def __init__(self, audio_format: AudioFormat) -> None:
        super().__init__()
        self.format = audio_format
        self._queue = bytearray()
        self._started: float | None = None
        self._sent_periods = 0

    def feed(self, pcm: bytes) -> None:
        if len(pcm) % (BYTES_PER_SAMPLE * self.format.channels):
            raise ValueError("PCM must hold whole 16-bit samples for every channel")
        self._queue.extend(pcm)

    def clear(self) -> None:
        self._queue.clear()

    @property
    def queued_bytes(self) -> int:
        return len(self._queue)

    def next_period(self) -> bytes:
        """The next 10 ms to send, taken from the queue and padded with silence."""
        size = self.format.bytes_per_period
        chunk = bytes(self._queue[:size])
        del self._queue[:size]
        return chunk + bytes(size - len(chunk))

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        else:
            self._sent_periods += 1
            await asyncio.sleep(
                max(0.0, self._started + self._sent_periods * AUDIO_PERIOD_S - time.monotonic())
            )
        samples = int(self.format.sample_rate * AUDIO_PERIOD_S)
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(self.next_period(), dtype="<i2").reshape(1, -1),
            format="s16",
            layout=self.format.layout,
        )
        frame.sample_rate = self.format.sample_rate
        frame.pts = self._sent_periods * samples
        frame.time_base = fractions.Fraction(1, self.format.sample_rate)
        return frame


class VideoFeedTrack(MediaStreamTrack):
    """A video track fed with I420 frames (encoded by aiortc) or H.264 access units (packetized as they are,
    never decoded or re-encoded: aiortc's sender packs an `av.Packet` instead of encoding it). Keeps at most
    `max_waiting` frames; a feeder faster than the network loses its oldest."""

    kind = "video"

    def __init__(self, codec: VideoCodec, max_waiting: int = 30) -> None:
        super().__init__()
        self.codec = codec
        self._frames: deque[av.VideoFrame | av.Packet] = deque(maxlen=max_waiting)
        self._arrived = asyncio.Event()
        self._first_timestamp: int | None = None

    def feed(self, video: VideoData) -> None:
        if self._first_timestamp is None:
            self._first_timestamp = video.timestamp
        pts = (video.timestamp - self._first_timestamp) * 90
        item: av.VideoFrame | av.Packet
        if self.codec is VideoCodec.VIDEO_CODEC_H264:
            if not video.data:
                raise ValueError("an H.264 engine feeds VideoData.data (Annex B NAL units)")
            item = av.Packet(video.data)
        else:
            planes = np.frombuffer(video.i420(), dtype=np.uint8).reshape(video.height * 3 // 2, video.width)
            item = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        item.pts = pts
        item.time_base = VIDEO_CLOCK
        self._frames.append(item)
        self._arrived.set()

    @property
    def waiting(self) -> int:
        return len(self._frames)

    async def recv(self) -> av.VideoFrame | av.Packet:  # type: ignore[override]
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._arrived.set()


async def read_audio(
    track: MediaStreamTrack, audio_format: AudioFormat, deliver: Callable[[AudioData], None]
) -> None:
    """Decoded audio of a received track, resampled to the engine's PCM format, until the track ends."""
    resampler = av.AudioResampler(format="s16", layout=audio_format.layout, rate=audio_format.sample_rate)
    started = time.monotonic()
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.AudioFrame)
            for pcm in resampler.resample(frame):
                pcm_bytes = bytes(pcm.planes[0])[: pcm.samples * audio_format.channels * BYTES_PER_SAMPLE]
                deliver(AudioData(pcm_bytes, int((time.monotonic() - started) * 1000)))
    except MediaStreamError:
        return


async def read_video(track: MediaStreamTrack, deliver: Callable[[VideoData], None]) -> None:
    """Decoded video of a received track as I420, until the track ends."""
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.VideoFrame)
            i420 = frame.reformat(format="yuv420p")
            ms = int(frame.pts * frame.time_base * 1000) if frame.pts is not None and frame.time_base else 0
            deliver(VideoData.from_i420(i420.to_ndarray().tobytes(), i420.width, i420.height, ms))
    except MediaStreamError:
        return
