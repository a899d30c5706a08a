"""A feed's file: RTP timestamps made monotonic (wrap, pauses), and encoded frames remuxed into a WebM
that decodes. The frames are encoded here with PyAV, as a publisher's
encoder would."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.recorder.files import FORMATS, FeedFile, TrackClock
from tests.ffprobe import probe

WIDTH, HEIGHT = 320, 240


def test_timestamps_start_at_the_track_offset_and_unwrap_past_2_to_the_32() -> None:
    clock = TrackClock("video", start=900)
    first = (1 << 32) - 3000
    assert clock.pts(first) == 900
    assert clock.pts(first + 3000 - (1 << 32)) == 3900
    assert clock.pts(3000) == 6900


def test_a_pause_leaves_no_gap_and_timestamps_never_go_back() -> None:
    clock = TrackClock("audio", start=0)
    assert [clock.pts(t) for t in (0, 960, 1920)] == [0, 960, 1920]
    clock.skip()
    # 10 s later on the RTP clock: the file continues one frame after the last one.
    assert clock.pts(1920 + 480000) == 2880
    assert clock.pts(1920 + 480960) == 3840
    # A frame that repeats a timestamp is nudged forward.
    assert clock.pts(1920 + 480960) == 3841


@functools.cache
def encoded_frames(count: int) -> tuple[list[bytes], list[bytes]]:
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.time_base = Fraction(1, 90000)
    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = 48000, "mono", "s16"
    audio.time_base = Fraction(1, 48000)
    video_packets: list[bytes] = []
    audio_packets: list[bytes] = []
    for index in range(count):
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane in picture.planes:
            plane.update(bytes([(index * 8) % 256]) * plane.buffer_size)
        picture.pts = index * 3000
        video_packets += [bytes(packet) for packet in video.encode(picture)]
        for _ in range(2):
            sound = av.AudioFrame(format="s16", layout="mono", samples=960)
            sound.planes[0].update(bytes(sound.planes[0].buffer_size))
            sound.sample_rate = 48000
            sound.pts = len(audio_packets) * 960
            audio_packets += [bytes(packet) for packet in audio.encode(sound)]
    return video_packets, audio_packets


def test_vp8_and_opus_are_remuxed_into_a_webm_that_decodes(tmp_path: Path) -> None:
    video, audio = encoded_frames(30)
    feed = FeedFile(tmp_path / "alice-f1.webm", video_codec="vp8", audio_codec="opus")
    # Audio before the first key frame is held until the header can be written.
    feed.write_audio(5000, audio[0])
    assert feed.audio_packets == 0
    for index, frame in enumerate(video):
        feed.write_video(100 + index * 3000, frame)
        for sound in audio[1 + 2 * index : 3 + 2 * index]:
            feed.write_audio(5000 + audio.index(sound) * 960, sound)
    feed.close()
    assert (feed.video_packets, feed.audio_packets) == (len(video), len(audio))
    with av.open(str(tmp_path / "alice-f1.webm")) as container:
        assert container.format.name.startswith("matroska")
        streams = {stream.type: stream.codec_context.name for stream in container.streams}
        assert streams == {"video": "vp8", "audio": "opus"}
        frames = {"video": 0, "audio": 0}
        for packet in container.demux():
            for decoded in packet.decode():
                frames[packet.stream.type] += 1
                if packet.stream.type == "video":
                    assert (decoded.width, decoded.height) == (WIDTH, HEIGHT)
    assert frames["video"] == len(video) and frames["audio"] >= len(audio) - 1


def test_video_waits_for_a_key_frame_and_a_paused_file_drops_frames(tmp_path: Path) -> None:
    video, _ = encoded_frames(5)
    feed = FeedFile(tmp_path / "f.webm", video_codec="vp8", audio_codec="")
    feed.write_video(0, video[1])
    assert feed.video_packets == 0 and feed.waiting_for_keyframe
    feed.write_video(3000, video[0])
    feed.pause()
    feed.write_video(6000, video[2])
    feed.resume()
    # After a pause, video starts again at a key frame.
    feed.write_video(9000, video[3])
    assert feed.video_packets == 1 and feed.waiting_for_keyframe
    feed.close()


def test_the_file_is_created_at_once_and_an_unwritable_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_bytes(b"")
    with pytest.raises(OSError):
        FeedFile(tmp_path / "blocked" / "f.webm", video_codec="vp8", audio_codec="opus")
    feed = FeedFile(tmp_path / "ok" / "f.mkv", video_codec="h264", audio_codec="", fmt=FORMATS["mkv"])
    assert (tmp_path / "ok" / "f.mkv").exists()
    feed.close()


@functools.cache
def h264_frames(count: int) -> list[bytes]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    # What a device sends over RTP: Annex B, parameter sets in the stream, no B-frames.
    encoder.options = {"tune": "zerolatency", "bframes": "0"}
    encoder.gop_size = 30
    frames: list[bytes] = []
    for index in range(count):
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane in picture.planes:
            plane.update(bytes([(index * 8) % 256]) * plane.buffer_size)
        picture.pts = index * 3000
        frames += [bytes(packet) for packet in encoder.encode(picture)]
    return frames + [bytes(packet) for packet in encoder.encode(None)]


@functools.cache
def g711_frames(codec: str, count: int) -> list[bytes]:
    """20 ms frames of a 440 Hz tone at 8 kHz, as a G.711 phone sends them."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
    encoder.time_base = Fraction(1, 8000)
    frames: list[bytes] = []
    for index in range(count):
        sound = av.AudioFrame.from_ndarray(
            (8000 * np.sin(2 * np.pi * 440 * (np.arange(160) + index * 160) / 8000)).astype("<i2")[None, :],
            format="s16",
            layout="mono",
        )
        sound.sample_rate = 8000
        sound.pts = index * 160
        frames += [bytes(packet) for packet in encoder.encode(sound)]
    return frames


# 2 s of media: 60 video frames at 30 fps, 100 audio frames of 20 ms.
SECONDS = 2.0


def feed_media(feed: FeedFile, video_codec: str, audio_codec: str, rounds: int = 1) -> tuple[int, int]:
    """Writes `rounds` times 2 s of `video_codec` / `audio_codec` ("" for none) into `feed`, interleaved
    as they arrive; the frames written of each."""
    video = {"vp8": lambda: encoded_frames(60)[0], "h264": lambda: h264_frames(60), "": list}[video_codec]()
    audio_rate = 8000 if audio_codec in ("pcmu", "pcma") else 48000
    audio = {
        "opus": lambda: encoded_frames(50)[1],
        "pcmu": lambda: g711_frames("pcm_mulaw", 100),
        "pcma": lambda: g711_frames("pcm_alaw", 100),
        "": list,
    }[audio_codec]()
    step = audio_rate // 50
    for round_ in range(rounds):
        for index in range(100):
            if index % 5 < 3 and video:
                frame = index // 5 * 3 + index % 5
                if frame < len(video):
                    feed.write_video((round_ * 60 + frame) * 3000, video[frame])
            if index < len(audio):
                feed.write_audio((round_ * 100 + index) * step, audio[index])
    return len(video) * rounds, len(audio) * rounds


@pytest.mark.parametrize(
    ("video", "audio", "fmt", "expected"),
    [
        # H.264 remuxed as it is; Opus transcoded to AAC for MP4 and FLV.
        ("h264", "opus", "mp4", {"video": "h264", "audio": "aac"}),
        ("h264", "opus", "flv", {"video": "h264", "audio": "aac"}),
        # VP8 cannot go into MP4/FLV: transcoded to H.264.
        ("vp8", "opus", "mp4", {"video": "h264", "audio": "aac"}),
        ("vp8", "opus", "flv", {"video": "h264", "audio": "aac"}),
        ("vp8", "opus", "webm", {"video": "vp8", "audio": "opus"}),
        ("h264", "opus", "mkv", {"video": "h264", "audio": "opus"}),
        # G.711 is recorded: AAC in MP4/FLV, Opus in WebM/Matroska.
        ("h264", "pcmu", "mp4", {"video": "h264", "audio": "aac"}),
        ("vp8", "pcma", "webm", {"video": "vp8", "audio": "opus"}),
        ("", "pcmu", "flv", {"audio": "aac"}),
        ("", "opus", "mp4", {"audio": "aac"}),
    ],
)
def test_each_format_holds_the_feed_remuxed_or_transcoded_only_where_it_must(
    tmp_path: Path, video: str, audio: str, fmt: str, expected: dict[str, str]
) -> None:
    path = tmp_path / f"f{FORMATS[fmt].suffix}"
    feed = FeedFile(path, video_codec=video, audio_codec=audio, fmt=FORMATS[fmt])
    written_video, _ = feed_media(feed, video, audio)
    feed.close()
    assert (feed.video_codec, feed.audio_codec) == (expected.get("video", ""), expected.get("audio", ""))
    found = probe(path)
    assert found.codecs == expected
    assert abs(found.duration_s - SECONDS) < 0.5
    assert found.size_bytes == path.stat().st_size > 0
    if video:
        assert (found.width, found.height) == (WIDTH, HEIGHT)
        assert found.frames["video"] == written_video
    if audio:
        # Every 20 ms of sound is in the file, whatever the codec's frame size (AAC: 1024 samples).
        assert found.frames["audio"] * {"aac": 1024, "opus": 960}[expected["audio"]] >= 0.9 * SECONDS * 48000


def test_a_fragmented_mp4_cut_off_mid_recording_plays_up_to_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "f.mp4"
    feed = FeedFile(path, video_codec="h264", audio_codec="opus", fmt=FORMATS["mp4"])
    feed_media(feed, "h264", "opus", rounds=2)
    # What a recorder killed now leaves on disk: no trailer, no flush of what the muxer still holds.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes())
    found = probe(cut)
    assert found.codecs == {"video": "h264", "audio": "aac"}
    assert found.frames["video"] >= 30 and found.duration_s >= 1.0
    feed.close()
