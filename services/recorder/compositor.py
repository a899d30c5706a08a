"""A composite recording (seed 002's default server recording: one mixed file of `width` x `height`,
streams placed by their tags): every feed decoded, the picture composed, the sound mixed, one file
encoded. All of that runs on a thread of its own per job, so the event loop only queues encoded frames
(CompositeInput) and signalling and other recordings stay responsive; PyAV's codecs and swscale run
without the GIL.

The file's clock is the wall clock of the recording, pauses left out: a picture every 1/FPS s shows the
latest frame of each feed (a feed that stalls keeps its last picture), and the sound of every feed is
mixed sample for sample, a little behind (MIX_DELAY_S) so that audio still in flight is not cut. So the
file lasts as long as the recording ran, from its start to its stop.

Layouts (services/recorder/layout.py) and watermarks (services/recorder/watermarks.py) are computed on
the same thread; ChangeRemoteRecordWatermark swaps the watermarks between two pictures.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import structlog

from services.recorder.files import FORMATS, add_video_encoder, audio_decoder, inspect_video, open_unbuffered
from services.recorder.layout import Placed, place
from services.recorder.params import Overlay, RecordOptions
from services.recorder.watermarks import Watermarks

log = structlog.get_logger(__name__)

FPS = 25
_VIDEO_CLOCK = 90000
_RATE = 48000
# Sound is mixed this far behind the wall clock: what a feed sends arrives a few packets late.
MIX_DELAY_S = 0.2
# A feed's sound buffered beyond this is dropped from its start (its clock runs faster than ours).
_MAX_BUFFER = _RATE // 2


class CompositorFailed(Exception):
    """The composite file could not be started (100005) or written (100106)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Feed:
    feed_id: str
    uid: str
    tag: str
    video_codec: str
    audio_codec: str
    video_decoder: Any = None
    audio_decoder: Any = None
    resampler: Any = None
    picture: av.VideoFrame | None = None
    sound: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    sound_started: bool = False


class CompositeInput:
    """A feed's frames on their way to the compositor (a capture's sink): queued, nothing else."""

    def __init__(self, compositor: Compositor, feed_id: str, video_codec: str) -> None:
        self._compositor = compositor
        self._feed_id = feed_id
        self._video_codec = video_codec
        self._waiting = bool(video_codec)

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting

    def write_video(self, rtp_timestamp: int, data: bytes) -> None:
        if self._waiting:
            # After a pause (and at the start) the decoder needs a key frame to make a picture.
            if not inspect_video(self._video_codec, data).keyframe:
                return
            self._waiting = False
        self._compositor.put(("video", self._feed_id, data))

    def write_audio(self, rtp_timestamp: int, data: bytes) -> None:
        self._compositor.put(("audio", self._feed_id, data))

    def pause(self) -> None:
        self._waiting = bool(self._video_codec)

    def resume(self) -> None:
        """The compositor resumes with the job (Compositor.resume)."""

    def close(self) -> None:
        self._compositor.put(("end", self._feed_id, b""))


class SplitFile:
    """Seed 002 splitType for a composite: the composite's sound (1) or picture (2) alone, the same
    encoded packets muxed into a second file."""

    def __init__(self, path: Path, kind: str, codec: str, compositor: Compositor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.kind = kind
        self.file: IO[bytes] = open_unbuffered(path)
        self.video_codec = codec if kind == "video" else ""
        self.audio_codec = codec if kind == "audio" else ""
        self.container: Any = None
        self.stream: Any = None
        self._compositor = compositor

    @property
    def video_packets(self) -> int:
        return self._compositor.video_packets if self.kind == "video" else 0

    @property
    def audio_packets(self) -> int:
        return self._compositor.audio_packets if self.kind == "audio" else 0

    @property
    def duration_ms(self) -> int:
        return self._compositor.duration_ms

    @property
    def first_frame_ms(self) -> int:
        return self._compositor.first_frame_ms

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def open(self, fmt: Any, template: Any) -> None:
        self.container = av.open(self.file, "w", format=fmt.ffmpeg_format, options=fmt.options)
        self.stream = self.container.add_stream_from_template(template)

    def mux(self, packet: av.Packet) -> None:
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.is_keyframe = packet.is_keyframe
        copy.stream = self.stream
        self.container.mux(copy)


class Compositor:
    def __init__(
        self,
        path: Path,
        options: RecordOptions,
        *,
        on_failure: Callable[[CompositorFailed], None],
        split_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Creates the file (and the split file at `split_path` when options ask for one) now (raises
        OSError: 100101) and starts the job's thread."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = open_unbuffered(path)
        self._options = options
        self._format = FORMATS[options.format]
        self._on_failure = on_failure
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
        self._feeds: dict[str, _Feed] = {}
        self._watermarks = Watermarks(options.overlays)
        self._with_video = options.wants("video")
        self._with_audio = options.wants("audio")
        self.video_codec = self._format.video_encoder[1] if self._with_video else ""
        self.audio_codec = self._format.audio_encoder[1] if self._with_audio else ""
        split_kind = options.split_kind()
        self.split: SplitFile | None = None
        if split_kind and split_path is not None:
            codec = self.video_codec if split_kind == "video" else self.audio_codec
            self.split = SplitFile(split_path, split_kind, codec, self)
        self.video_packets = 0
        self.audio_packets = 0
        self.first_frame_ms = time.time_ns() // 1_000_000
        # Recording time so far (pauses left out), in seconds, as of the last picture.
        self._elapsed = 0.0
        self._samples = 0
        self._failure: CompositorFailed | None = None
        # Opened on the job's thread.
        self._video_stream: Any = None
        self._audio_stream: Any = None
        self._audio_out: Any = None
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"compositor-{path.stem}", daemon=True)
        self._thread.start()

    # Called from the event loop

    def input(self, feed_id: str, uid: str, tag: str, video_codec: str, audio_codec: str) -> CompositeInput:
        video = video_codec if self._with_video else ""
        audio = audio_codec if self._with_audio else ""
        self.put(("feed", feed_id, _Feed(feed_id, uid, tag, video, audio)))
        return CompositeInput(self, feed_id, video)

    def put(self, item: tuple[str, str, Any]) -> None:
        # While paused, media is left out; feeds still come and go.
        if item[0] in ("video", "audio") and self._paused.is_set():
            return
        self._queue.put(item)

    def set_overlays(self, overlays: tuple[Overlay, ...]) -> None:
        """ChangeRemoteRecordWatermark: from the next picture on."""
        self._queue.put(("overlays", "", overlays))

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def duration_ms(self) -> int:
        return int(self._elapsed * 1000)

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        """Finish the file (blocking: call it off the event loop); raises CompositorFailed."""
        self._stopping.set()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    # The job's thread

    def _run(self) -> None:
        try:
            container = self._open()
        except (OSError, av.FFmpegError) as error:
            self._fail(CompositorFailed(100005, f"the mixer could not start: {error}"))
            self._close_files()
            return
        try:
            self._loop(container)
            self._finish(container)
        except (OSError, av.FFmpegError) as error:
            self._fail(CompositorFailed(100106, f"writing the composite failed: {error}"))
        finally:
            self._close_files()

    def _close_files(self) -> None:
        self._file.close()
        if self.split is not None:
            self.split.file.close()

    def _fail(self, failure: CompositorFailed) -> None:
        self._failure = failure
        if not self._stopping.is_set():
            self._on_failure(failure)

    def _open(self) -> Any:
        container = av.open(self._file, "w", format=self._format.ffmpeg_format, options=self._format.options)
        if self._with_video:
            size = (self._options.width, self._options.height)
            self._video_stream = add_video_encoder(
                container, self._format.video_encoder[0], size, self._options.crf
            )
        if self._with_audio:
            stream: Any = container.add_stream(self._format.audio_encoder[0], rate=_RATE)
            stream.layout = "mono"
            self._audio_stream = stream
            self._audio_out = av.AudioResampler(
                format=stream.codec_context.format.name,
                layout="mono",
                rate=_RATE,
                frame_size=stream.codec_context.frame_size or None,
            )
        if self.split is not None:
            # The encoders open now, so that the split file's stream copies their parameters.
            container.start_encoding()
            template = self._video_stream if self.split.kind == "video" else self._audio_stream
            self.split.open(self._format, template)
        return container

    def _loop(self, container: Any) -> None:
        tick = 1 / FPS
        last = self._clock()
        next_tick = last
        while not self._stopping.is_set():
            next_tick += tick
            delay = next_tick - self._clock()
            if delay > 0:
                self._stopping.wait(delay)
            now = self._clock()
            if self._paused.is_set():
                last = now
                self._drain()
                continue
            self._elapsed += now - last
            last = now
            self._drain()
            if self._with_video:
                self._picture(container)
            if self._with_audio:
                self._mix(container, self._elapsed - MIX_DELAY_S)
            if next_tick < now - 1:
                # Far behind (a machine too busy): skip the pictures we missed rather than rush them.
                next_tick = now

    def _finish(self, container: Any) -> None:
        self._drain()
        if self._with_audio:
            self._mix(container, self._elapsed)
            for frame in self._audio_out.resample(None):
                self._encode_audio(container, frame)
            self._mux(container, self._audio_stream.encode(None), "audio")
        if self._with_video:
            self._mux(container, self._video_stream.encode(None), "video")
        container.close()
        if self.split is not None:
            self.split.container.close()

    def _drain(self) -> None:
        while True:
            try:
                kind, feed_id, payload = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "feed":
                self._feeds[feed_id] = payload
            elif kind == "end":
                self._feeds.pop(feed_id, None)
            elif kind == "overlays":
                self._watermarks = Watermarks(payload)
            elif (feed := self._feeds.get(feed_id)) is not None and not self._paused.is_set():
                try:
                    if kind == "video":
                        self._decode_video(feed, payload)
                    else:
                        self._decode_audio(feed, payload)
                except av.FFmpegError:
                    # One bad frame of one feed (lost packets) must not end the recording.
                    continue

    def _decode_video(self, feed: _Feed, data: bytes) -> None:
        if not feed.video_codec:
            return
        if feed.video_decoder is None:
            feed.video_decoder = av.CodecContext.create(feed.video_codec, "r")
        for frame in feed.video_decoder.decode(av.Packet(data)):
            feed.picture = frame

    def _decode_audio(self, feed: _Feed, data: bytes) -> None:
        if not feed.audio_codec:
            return
        if feed.audio_decoder is None:
            feed.audio_decoder = audio_decoder(feed.audio_codec)
            feed.resampler = av.AudioResampler(format="s16", layout="mono", rate=_RATE)
        for frame in feed.audio_decoder.decode(av.Packet(data)):
            frame.pts = None
            for mono in feed.resampler.resample(frame):
                samples = mono.to_ndarray().reshape(-1)
                feed.sound = np.concatenate([feed.sound, samples])[-_MAX_BUFFER:]
                feed.sound_started = True

    def _picture(self, container: Any) -> None:
        options = self._options
        width, height = options.width, options.height
        canvas = _Canvas(width, height, options.background)
        placed = place(
            [(feed.feed_id, feed.tag) for feed in self._feeds.values() if feed.video_codec],
            options,
        )
        for item in placed:
            picture = self._feeds[item.feed_id].picture
            if picture is not None:
                canvas.paste(picture, item)
        self._watermarks.draw(canvas.planes, {item.tag: item for item in placed}, time.time())
        frame = av.VideoFrame.from_ndarray(canvas.yuv, format="yuv420p")
        frame.pts = round(self._elapsed * _VIDEO_CLOCK)
        frame.time_base = Fraction(1, _VIDEO_CLOCK)
        self._mux(container, self._video_stream.encode(frame), "video")

    def _mix(self, container: Any, until_s: float) -> None:
        """Mix every feed's sound up to `until_s` of the recording into the file."""
        wanted = int(until_s * _RATE) - self._samples
        if wanted <= 0:
            return
        mixed = np.zeros(wanted, dtype=np.int32)
        for feed in self._feeds.values():
            if not feed.sound_started:
                continue
            taken = feed.sound[:wanted]
            feed.sound = feed.sound[wanted:]
            mixed[: len(taken)] += taken
        samples = np.clip(mixed, -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = _RATE
        for out in self._audio_out.resample(frame):
            self._encode_audio(container, out)

    def _encode_audio(self, container: Any, frame: av.AudioFrame) -> None:
        frame.pts = self._samples
        frame.time_base = Fraction(1, _RATE)
        self._samples += frame.samples
        self._mux(container, self._audio_stream.encode(frame), "audio")

    def _mux(self, container: Any, packets: list[av.Packet], kind: str) -> None:
        for packet in packets:
            container.mux(packet)
            if self.split is not None and self.split.kind == kind:
                self.split.mux(packet)
            if kind == "video":
                self.video_packets += 1
            else:
                self.audio_packets += 1


class _Canvas:
    """The picture being composed, as YUV 4:2:0 planes over one array."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]) -> None:
        self.width, self.height = width, height
        self.yuv = np.empty((height * 3 // 2, width), dtype=np.uint8)
        y, u, v = rgb_to_yuv(background)
        luma = self.yuv[:height]
        chroma = self.yuv[height:].reshape(2, height // 2, width // 2)
        luma[:] = y
        chroma[0][:] = u
        chroma[1][:] = v
        self.planes = (luma, chroma[0], chroma[1])

    def paste(self, picture: av.VideoFrame, where: Placed) -> None:
        rect = where.fit(picture.width, picture.height)
        if rect.width < 2 or rect.height < 2:
            return
        scaled = picture.reformat(rect.width, rect.height, "yuv420p").to_ndarray()
        luma, u, v = self.planes
        w, h = rect.width, rect.height
        x, y = rect.x, rect.y
        # Clipped to the canvas: a tagPositions rectangle may reach past its edge.
        cw, ch = min(w, self.width - x), min(h, self.height - y)
        if cw <= 0 or ch <= 0:
            return
        luma[y : y + ch, x : x + cw] = scaled[:h][:ch, :cw]
        chroma = scaled[h:].reshape(2, h // 2, w // 2)
        u[y // 2 : (y + ch) // 2, x // 2 : (x + cw) // 2] = chroma[0][: ch // 2, : cw // 2]
        v[y // 2 : (y + ch) // 2, x // 2 : (x + cw) // 2] = chroma[1][: ch // 2, : cw // 2]


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, as FFmpeg's yuv420p from rgb24."""
    r, g, b = rgb
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return round(y), round(u), round(v)
