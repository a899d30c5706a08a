"""One feed's file: its encoded frames remuxed with PyAV into a container, never decoded or encoded.

Containers: VP8 video (with or without Opus audio) and Opus audio alone go to WebM, the format browsers
play; H.264 video goes to Matroska (.mkv), which takes H.264 as the Annex B frames the RTP depacketizer
gives (MP4 wants the parameter sets moved out of the stream first). G.711 (PCMU/PCMA) fits neither and
is left out of the file (docs/recording.md).

Streams are added without a codec context (`add_mux_stream`), so writing the header opens no encoder.
The header is written when the video's first key frame arrives (its size comes from that frame) or, for
a feed without video, at the first audio frame; audio that arrives before is held and written then.

Timestamps come from each track's RTP timestamps, unwrapped past 2^32, in the track's clock rate (90 kHz
video, 48 kHz Opus). Each track starts at the wall-clock distance of its first frame from the file's
first frame, so audio and video stay together. While the file is paused frames are dropped, and the
first frame after the pause follows the last one before it by one frame: the file has no gap. Video
after a pause (and at the start) waits for a key frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
from av.container import OutputContainer

from services.core.media.bitstream import FrameInfo, inspect_h264, inspect_vp8, split_annexb

# What the recorder writes, by RTP codec name: the FFmpeg codec and the containers it fits in.
VIDEO_CODECS = {"vp8": "vp8", "h264": "h264"}
AUDIO_CODECS = {"opus": "opus"}
# Audio held while the header waits for the video's first key frame (about 5 s of Opus).
_HELD_AUDIO = 250
# Frame durations assumed for the first frame after a pause, in clock-rate units.
_DEFAULT_STEP = {"video": 3000, "audio": 960}
_RTP_WRAP = 1 << 32


def container_for(video_codec: str) -> tuple[str, str]:
    """The (PyAV format, file suffix) for a feed whose video is `video_codec` ("" for none)."""
    if video_codec == "h264":
        return "matroska", ".mkv"
    return "webm", ".webm"


def inspect_video(codec: str, data: bytes) -> FrameInfo:
    if codec == "h264":
        return inspect_h264(split_annexb(data))
    return inspect_vp8(data)


class TrackClock:
    """A track's RTP timestamps as monotonic presentation times, pauses taken out."""

    def __init__(self, kind: str, start: int) -> None:
        self._kind = kind
        # Where the track starts in the file, in its own clock units.
        self._start = start
        self._first: int | None = None
        self._last_raw = 0
        self._cycles = 0
        self._shift = 0
        self._last_pts: int | None = None
        self._step = _DEFAULT_STEP[kind]
        self._after_gap = False

    def skip(self) -> None:
        """Frames are being left out: the next one follows the last one written."""
        self._after_gap = True

    def pts(self, rtp_timestamp: int) -> int:
        unwrapped = self._unwrap(rtp_timestamp)
        if self._first is None:
            self._first = unwrapped
        pts = self._start + unwrapped - self._first - self._shift
        if self._last_pts is not None:
            if self._after_gap:
                self._shift += pts - (self._last_pts + self._step)
                pts = self._last_pts + self._step
            elif pts > self._last_pts:
                self._step = min(pts - self._last_pts, 10 * _DEFAULT_STEP[self._kind])
            else:
                # Never backwards: a muxer refuses non-increasing timestamps within a stream.
                pts = self._last_pts + 1
        self._after_gap = False
        self._last_pts = pts
        return pts

    def _unwrap(self, raw: int) -> int:
        if self._first is not None:
            if raw < self._last_raw and self._last_raw - raw > _RTP_WRAP // 2:
                self._cycles += 1
            elif raw > self._last_raw and raw - self._last_raw > _RTP_WRAP // 2:
                # A late frame from before the last wrap.
                self._last_raw = raw
                return raw + (self._cycles - 1) * _RTP_WRAP
        self._last_raw = raw
        return raw + self._cycles * _RTP_WRAP


@dataclass
class _Track:
    kind: str
    codec: str
    clock_rate: int
    stream: Any = None
    clock: TrackClock | None = None
    packets: int = 0
    last_pts: int = 0
    waiting_for_keyframe: bool = False


class WriteFailed(Exception):
    """The file could not be written (disk full, I/O error): seed 002 event 100106."""


class FeedFile:
    def __init__(self, path: Path, *, video_codec: str, audio_codec: str, audio_rate: int = 48000) -> None:
        """Create the file now, so that a folder that cannot be written fails at once (100101): raises
        OSError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = path.open("xb")
        self._format, _ = container_for(video_codec)
        self._video = _Track("video", video_codec, 90000, waiting_for_keyframe=True) if video_codec else None
        self._audio = _Track("audio", audio_codec, audio_rate) if audio_codec else None
        self._container: OutputContainer | None = None
        self._held: list[tuple[int, bytes, float]] = []
        self._first_arrival: float | None = None
        # Server time of the first frame written, ms since the epoch.
        self.first_frame_ms = 0
        self._paused = False
        self._closed = False

    @property
    def video_packets(self) -> int:
        return self._video.packets if self._video else 0

    @property
    def audio_packets(self) -> int:
        return self._audio.packets if self._audio else 0

    @property
    def duration_ms(self) -> int:
        ends = [
            track.last_pts * 1000 // track.clock_rate
            for track in (self._video, self._audio)
            if track is not None and track.packets
        ]
        return max(ends, default=0)

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._video is not None and self._video.waiting_for_keyframe

    def pause(self) -> None:
        self._paused = True
        for track in (self._video, self._audio):
            if track is not None and track.clock is not None:
                track.clock.skip()
        if self._video is not None:
            self._video.waiting_for_keyframe = True

    def resume(self) -> None:
        self._paused = False

    def write_video(self, rtp_timestamp: int, data: bytes) -> None:
        track = self._video
        if track is None or self._paused or self._closed:
            return
        info = inspect_video(track.codec, data)
        if track.waiting_for_keyframe:
            if not info.keyframe:
                return
            track.waiting_for_keyframe = False
        if self._container is None:
            self._open(info.size or (640, 480))
        self._mux(track, rtp_timestamp, data, time.monotonic(), keyframe=info.keyframe)

    def write_audio(self, rtp_timestamp: int, data: bytes) -> None:
        track = self._audio
        if track is None or self._paused or self._closed:
            return
        arrival = time.monotonic()
        if self._container is None:
            if self._video is not None:
                if len(self._held) >= _HELD_AUDIO:
                    self._held.pop(0)
                self._held.append((rtp_timestamp, data, arrival))
                return
            self._open(None)
        self._mux(track, rtp_timestamp, data, arrival, keyframe=True)

    def close(self) -> None:
        """Write the trailer and close the file; raises WriteFailed when the disk refuses."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._container is not None:
                self._container.close()
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        finally:
            self._file.close()

    def _open(self, size: tuple[int, int] | None) -> None:
        try:
            container = av.open(self._file, "w", format=self._format)
            if self._video is not None:
                width, height = size or (0, 0)
                self._video.stream = container.add_mux_stream(
                    VIDEO_CODECS[self._video.codec], width=width, height=height
                )
            if self._audio is not None:
                self._audio.stream = container.add_mux_stream(
                    AUDIO_CODECS[self._audio.codec], rate=self._audio.clock_rate
                )
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        self._container = container
        held, self._held = self._held, []
        for rtp_timestamp, data, arrival in held:
            if self._audio is not None:
                self._mux(self._audio, rtp_timestamp, data, arrival, keyframe=True)

    def _mux(self, track: _Track, rtp_timestamp: int, data: bytes, arrival: float, *, keyframe: bool) -> None:
        assert self._container is not None
        if self._first_arrival is None:
            self._first_arrival = arrival
            self.first_frame_ms = time.time_ns() // 1_000_000
        if track.clock is None:
            offset = max(0.0, arrival - self._first_arrival)
            track.clock = TrackClock(track.kind, round(offset * track.clock_rate))
        pts = track.clock.pts(rtp_timestamp)
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, track.clock_rate)
        packet.is_keyframe = keyframe
        packet.stream = track.stream
        try:
            self._container.mux(packet)
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        track.packets += 1
        track.last_pts = pts
