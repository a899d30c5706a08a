"""One feed's file: its encoded frames written with PyAV into the container asked for (recordParam
`format`, Parley's extension; docs/recording.md "Formats").

A track whose codec the container takes is remuxed, never decoded: H.264 into MP4, FLV and Matroska, VP8
into WebM and Matroska, Opus into WebM and Matroska. Only what the container cannot take is transcoded:
Opus and G.711 (PCMU/PCMA) to AAC for MP4/FLV, G.711 to Opus for WebM/Matroska, VP8 to H.264 for
MP4/FLV, H.264 to VP8 for WebM. MP4 is written fragmented (a fragment at each video key frame and at
least every second), so a recorder killed mid-recording leaves a file that plays up to its last fragment.

Remuxed streams are added without a codec context (`add_mux_stream`), so writing the header opens no
encoder; H.264 goes in as the Annex B frames the RTP depacketizer gives, FFmpeg's MP4 and FLV muxers take
the parameter sets from the first key frame. The header is written when the video's first key frame
arrives (its size comes from that frame) or, for a file without video, at the first audio frame; audio
that arrives before is held and written then.

Timestamps come from each track's RTP timestamps, unwrapped past 2^32, in the track's clock rate (90 kHz
video, 48 kHz Opus, 8 kHz G.711). Each track starts at the wall-clock distance of its first frame from the
file's first frame, so audio and video stay together. While the file is paused frames are dropped, and
the first frame after the pause follows the last one before it by one frame: the file has no gap. Video
after a pause (and at the start) waits for a key frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
from av.container import OutputContainer

from services.core.media.bitstream import FrameInfo, inspect_h264, inspect_vp8, split_annexb

# RTP codec names the recorder takes, with their FFmpeg decoder and RTP clock rate.
VIDEO_CODECS = {"vp8": "vp8", "h264": "h264"}
AUDIO_CODECS = {"opus": "opus", "pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}
AUDIO_CLOCK_RATES = {"opus": 48000, "pcmu": 8000, "pcma": 8000}
# Audio held while the header waits for the video's first key frame (about 5 s of Opus).
_HELD_AUDIO = 250
# Frame durations assumed for the first frame after a pause, in clock-rate units.
_DEFAULT_STEP = {"video": 3000, "audio": 960}
_RTP_WRAP = 1 << 32
_VIDEO_CLOCK = 90000
# Transcoded audio is written at 48 kHz stereo, as WebRTC's Opus is.
_AUDIO_OUT_RATE = 48000
# x264 for a recording: fast, no B-frames (pts = dts), a key frame at least every 2 s (MP4 fragments).
_X264_OPTIONS = {"preset": "veryfast", "tune": "zerolatency"}
_GOP = 60


@dataclass(frozen=True)
class OutputFormat:
    """A container: the codecs it takes as they are, and what the others are transcoded to."""

    name: str
    ffmpeg_format: str
    suffix: str
    video_codecs: frozenset[str]
    audio_codecs: frozenset[str]
    # (encoder, FFmpeg codec name of its output)
    video_encoder: tuple[str, str]
    audio_encoder: tuple[str, str]
    options: dict[str, str] = field(default_factory=dict)


# recordParam `format` (Parley's extension). MP4: fragmented, the moov written with the first fragment
# (delay_moov) so that H.264's parameter sets, known only from the first key frame, are in it; MP4 and
# FLV flush each packet (each fragment, for MP4) to the file as it is muxed, so a crash loses none.
FORMATS = {
    "mp4": OutputFormat(
        "mp4",
        "mp4",
        ".mp4",
        frozenset({"h264"}),
        frozenset({"aac"}),
        ("libx264", "h264"),
        ("aac", "aac"),
        {
            "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
            "frag_duration": "1000000",
            "flush_packets": "1",
        },
    ),
    "flv": OutputFormat(
        "flv",
        "flv",
        ".flv",
        frozenset({"h264"}),
        frozenset({"aac"}),
        ("libx264", "h264"),
        ("aac", "aac"),
        {"flush_packets": "1"},
    ),
    "webm": OutputFormat(
        "webm",
        "webm",
        ".webm",
        frozenset({"vp8"}),
        frozenset({"opus"}),
        ("libvpx", "vp8"),
        ("libopus", "opus"),
    ),
    "mkv": OutputFormat(
        "mkv",
        "matroska",
        ".mkv",
        frozenset({"vp8", "h264"}),
        frozenset({"opus"}),
        ("libvpx", "vp8"),
        ("libopus", "opus"),
    ),
}
DEFAULT_FORMAT = "mp4"


def open_unbuffered(path: Path) -> IO[bytes]:
    """A new file (never an existing one) whose writes go straight to the OS: with the muxers' own
    `flush_packets`, what a recorder killed mid-recording leaves on disk is every packet muxed."""
    return path.open("xb", buffering=0)


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


class _Track:
    """One kind of media of a file: how its frames become packets in the container."""

    def __init__(self, kind: str, codec: str, clock_rate: int, output_codec: str) -> None:
        self.kind = kind
        self.codec = codec
        self.clock_rate = clock_rate
        self.output_codec = output_codec
        self.clock: TrackClock | None = None
        self.packets = 0
        self.last_pts = 0
        self.waiting_for_keyframe = kind == "video"

    def add_to(self, container: OutputContainer, size: tuple[int, int]) -> None:
        raise NotImplementedError

    def write(self, container: OutputContainer, pts: int, data: bytes, keyframe: bool) -> None:
        raise NotImplementedError

    def flush(self, container: OutputContainer) -> None:
        """Whatever an encoder still holds goes into the file."""


class _RemuxTrack(_Track):
    stream: Any = None

    def add_to(self, container: OutputContainer, size: tuple[int, int]) -> None:
        if self.kind == "video":
            self.stream = container.add_mux_stream(self.output_codec, width=size[0], height=size[1])
        else:
            self.stream = container.add_mux_stream(self.output_codec, rate=self.clock_rate)

    def write(self, container: OutputContainer, pts: int, data: bytes, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, self.clock_rate)
        packet.is_keyframe = keyframe
        packet.stream = self.stream
        container.mux(packet)
        self.packets += 1


class _TranscodeVideoTrack(_Track):
    """Decoded and encoded again, at the size of the first key frame."""

    def __init__(self, codec: str, encoder: tuple[str, str], crf: int | None) -> None:
        super().__init__("video", codec, _VIDEO_CLOCK, encoder[1])
        self._encoder_name = encoder[0]
        self._decoder: Any = av.CodecContext.create(VIDEO_CODECS[codec], "r")
        self._crf = crf
        self._size = (0, 0)
        self.stream: Any = None

    def add_to(self, container: OutputContainer, size: tuple[int, int]) -> None:
        self._size = size
        self.stream = add_video_encoder(container, self._encoder_name, size, self._crf)

    def write(self, container: OutputContainer, pts: int, data: bytes, keyframe: bool) -> None:
        for frame in self._decoder.decode(av.Packet(data)):
            if (frame.width, frame.height) != self._size:
                frame = frame.reformat(self._size[0], self._size[1], "yuv420p")
            frame.pts = pts
            frame.time_base = Fraction(1, _VIDEO_CLOCK)
            self._mux(container, self.stream.encode(frame))

    def flush(self, container: OutputContainer) -> None:
        self._mux(container, self.stream.encode(None))

    def _mux(self, container: OutputContainer, packets: list[av.Packet]) -> None:
        for packet in packets:
            container.mux(packet)
            self.packets += 1


class _TranscodeAudioTrack(_Track):
    """Decoded, resampled to 48 kHz stereo in the encoder's frame size, encoded; timed by samples."""

    def __init__(self, codec: str, encoder: tuple[str, str]) -> None:
        super().__init__("audio", codec, AUDIO_CLOCK_RATES[codec], encoder[1])
        self._encoder_name = encoder[0]
        self._decoder = audio_decoder(codec)
        self._resampler: av.AudioResampler | None = None
        self._samples: int | None = None
        self.stream: Any = None

    def add_to(self, container: OutputContainer, size: tuple[int, int]) -> None:
        self.stream = container.add_stream(self._encoder_name, rate=_AUDIO_OUT_RATE)
        self.stream.layout = "stereo"

    def write(self, container: OutputContainer, pts: int, data: bytes, keyframe: bool) -> None:
        if self._samples is None:
            # The track's start in the file, in output samples; from then on, samples written.
            self._samples = pts * _AUDIO_OUT_RATE // self.clock_rate
        for frame in self._decoder.decode(av.Packet(data)):
            self._encode(container, self._resample(frame))

    def flush(self, container: OutputContainer) -> None:
        if self._resampler is not None:
            self._encode(container, self._resampler.resample(None))
            self._mux(container, self.stream.encode(None))

    def _resample(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._resampler is None:
            codec = self.stream.codec_context
            self._resampler = av.AudioResampler(
                format=codec.format.name,
                layout="stereo",
                rate=_AUDIO_OUT_RATE,
                frame_size=codec.frame_size or None,
            )
        if frame is not None:
            # Timed by the samples written (_encode), not by the decoder's guesses.
            frame.pts = None
        return self._resampler.resample(frame)

    def _encode(self, container: OutputContainer, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            assert self._samples is not None
            frame.pts = self._samples
            frame.time_base = Fraction(1, _AUDIO_OUT_RATE)
            self._samples += frame.samples
            self._mux(container, self.stream.encode(frame))

    def _mux(self, container: OutputContainer, packets: list[av.Packet]) -> None:
        for packet in packets:
            container.mux(packet)
            self.packets += 1


def audio_decoder(codec: str) -> Any:
    """A decoder for an RTP audio codec's frames."""
    decoder: Any = av.CodecContext.create(AUDIO_CODECS[codec], "r")
    if codec != "opus":
        # G.711 says nothing of its rate and channels: RTP's PCMU/PCMA are 8 kHz mono.
        decoder.sample_rate = AUDIO_CLOCK_RATES[codec]
        decoder.layout = "mono"
    return decoder


def add_video_encoder(
    container: OutputContainer, encoder: str, size: tuple[int, int], crf: int | None
) -> Any:
    """An encoding video stream for a recording: H.264 (x264) or VP8 (libvpx), 90 kHz timestamps."""
    stream: Any = container.add_stream(encoder)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    context = stream.codec_context
    context.time_base = Fraction(1, _VIDEO_CLOCK)
    context.gop_size = _GOP
    if encoder == "libx264":
        context.options = {**_X264_OPTIONS, "crf": str(crf if crf is not None else 23)}
    else:
        context.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "crf": str(crf if crf is not None else 10),
        }
        context.bit_rate = 1_000_000
    return stream


class WriteFailed(Exception):
    """The file could not be written (disk full, I/O error): seed 002 event 100106."""


def _track(kind: str, codec: str, fmt: OutputFormat, crf: int | None) -> _Track:
    if kind == "video":
        if codec in fmt.video_codecs:
            return _RemuxTrack("video", codec, _VIDEO_CLOCK, codec)
        return _TranscodeVideoTrack(codec, fmt.video_encoder, crf)
    if codec in fmt.audio_codecs:
        return _RemuxTrack("audio", codec, AUDIO_CLOCK_RATES[codec], codec)
    return _TranscodeAudioTrack(codec, fmt.audio_encoder)


class FeedFile:
    def __init__(
        self,
        path: Path,
        *,
        video_codec: str,
        audio_codec: str,
        fmt: OutputFormat = FORMATS["webm"],
        crf: int | None = None,
    ) -> None:
        """A file with the feed's `video_codec` / `audio_codec` (RTP names; "" leaves that kind out) in
        `fmt`. Created now, so that a folder that cannot be written fails at once (100101): raises
        OSError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = open_unbuffered(path)
        self._format = fmt
        self._video = _track("video", video_codec, fmt, crf) if video_codec else None
        self._audio = _track("audio", audio_codec, fmt, crf) if audio_codec else None
        self._container: OutputContainer | None = None
        self._held: list[tuple[int, bytes, float]] = []
        self._first_arrival: float | None = None
        # Server time of the first frame written, ms since the epoch.
        self.first_frame_ms = 0
        self._paused = False
        self._closed = False

    @property
    def video_codec(self) -> str:
        """The FFmpeg name of the video in the file ("" for none)."""
        return self._video.output_codec if self._video else ""

    @property
    def audio_codec(self) -> str:
        return self._audio.output_codec if self._audio else ""

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
        self._write(track, rtp_timestamp, data, time.monotonic(), keyframe=info.keyframe)

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
            self._open((0, 0))
        self._write(track, rtp_timestamp, data, arrival, keyframe=True)

    def close(self) -> None:
        """Write the trailer and close the file; raises WriteFailed when the disk refuses."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._container is not None:
                for track in (self._video, self._audio):
                    if track is not None:
                        track.flush(self._container)
                self._container.close()
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        finally:
            self._file.close()

    def _open(self, size: tuple[int, int]) -> None:
        try:
            container = av.open(
                self._file, "w", format=self._format.ffmpeg_format, options=self._format.options
            )
            for track in (self._video, self._audio):
                if track is not None:
                    track.add_to(container, size)
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        self._container = container
        held, self._held = self._held, []
        for rtp_timestamp, data, arrival in held:
            if self._audio is not None:
                self._write(self._audio, rtp_timestamp, data, arrival, keyframe=True)

    def _write(
        self, track: _Track, rtp_timestamp: int, data: bytes, arrival: float, *, keyframe: bool
    ) -> None:
        assert self._container is not None
        if self._first_arrival is None:
            self._first_arrival = arrival
            self.first_frame_ms = time.time_ns() // 1_000_000
        if track.clock is None:
            offset = max(0.0, arrival - self._first_arrival)
            track.clock = TrackClock(track.kind, round(offset * track.clock_rate))
        pts = track.clock.pts(rtp_timestamp)
        try:
            track.write(self._container, pts, data, keyframe)
        except (OSError, av.FFmpegError) as error:
            raise WriteFailed(str(error)) from error
        track.last_pts = pts
