"""Media to feed when there is no camera or microphone: a moving test pattern (I420) and PCM from a sound
file (anything FFmpeg reads, resampled to the engine's format) or a tone."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from parley_sdk.media import AUDIO_PERIOD_S, AudioData, AudioFormat, VideoData


def pattern_frames(width: int = 320, height: int = 240, fps: int = 15) -> Iterator[VideoData]:
    """Endless I420 frames: colour bars with a bright bar sweeping across, timestamps at `fps`."""
    columns = np.arange(width, dtype=np.uint16)
    bars = ((columns * 8 // width) * 32).astype(np.uint8)
    chroma = np.full((height // 2, width // 2), 128, dtype=np.uint8)
    index = 0
    while True:
        luma = np.tile(bars, (height, 1))
        sweep = (index * 4) % width
        luma[:, sweep : sweep + 8] = 235
        u = chroma + np.uint8((index * 2) % 64)
        frame = luma.tobytes() + u.tobytes() + chroma.tobytes()
        yield VideoData.from_i420(frame, width, height, timestamp=index * 1000 // fps)
        index += 1


def tone(audio_format: AudioFormat, frequency_hz: float = 440.0, seconds: float = 1.0) -> bytes:
    """A sine tone at half scale, as PCM in `audio_format`."""
    samples = int(audio_format.sample_rate * seconds)
    wave = (
        np.sin(2 * math.pi * frequency_hz * np.arange(samples) / audio_format.sample_rate) * 16000
    ).astype("<i2")
    return np.repeat(wave, audio_format.channels).tobytes()


def sound_file_pcm(path: str | Path, audio_format: AudioFormat) -> bytes:
    """The whole file's audio as PCM in `audio_format` (16-bit interleaved)."""
    resampler = av.AudioResampler(format="s16", layout=audio_format.layout, rate=audio_format.sample_rate)
    chunks: list[bytes] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for pcm in resampler.resample(frame):
                chunks.append(bytes(pcm.planes[0])[: pcm.samples * audio_format.channels * 2])
    for pcm in resampler.resample(None):
        chunks.append(bytes(pcm.planes[0])[: pcm.samples * audio_format.channels * 2])
    return b"".join(chunks)


def periods(pcm: bytes, audio_format: AudioFormat) -> Iterator[bytes]:
    """`pcm` in 10 ms pieces, for feeding at the pace a microphone would."""
    size = audio_format.bytes_per_period
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


def energy(pcm: bytes) -> float:
    """Root mean square of 16-bit PCM, 0-32767: how loud it is."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


class Feedable(Protocol):
    def feed_audio(self, audio: AudioData) -> None: ...

    def feed_video(self, video: VideoData) -> None: ...


async def play(
    target: Feedable, audio_format: AudioFormat, pcm: bytes, video: Iterator[VideoData] | None, fps: int = 15
) -> None:
    """Feeds `pcm` (looped) and `video` to `target` in real time until cancelled: audio in 10 ms
    periods, one video frame every 1/fps s."""
    started = time.monotonic()
    audio_periods = itertools.cycle(
        list(periods(pcm, audio_format)) or [bytes(audio_format.bytes_per_period)]
    )
    fed_audio = fed_video = 0
    while True:
        elapsed = time.monotonic() - started
        while fed_audio * AUDIO_PERIOD_S <= elapsed:
            target.feed_audio(AudioData(next(audio_periods), int(fed_audio * AUDIO_PERIOD_S * 1000)))
            fed_audio += 1
        while video is not None and fed_video / fps <= elapsed:
            target.feed_video(next(video))
            fed_video += 1
        await asyncio.sleep(AUDIO_PERIOD_S)
