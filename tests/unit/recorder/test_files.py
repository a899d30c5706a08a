"""A feed's file: RTP timestamps made monotonic (wrap, pauses), and encoded frames remuxed into a WebM
that decodes. The frames are encoded here with PyAV, as a publisher's
encoder would."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from services.recorder.files import FeedFile, TrackClock, container_for

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
    feed = FeedFile(tmp_path / "ok" / "f.mkv", video_codec="h264", audio_codec="")
    assert (tmp_path / "ok" / "f.mkv").exists()
    feed.close()
    assert container_for("h264") == ("matroska", ".mkv") and container_for("vp8") == ("webm", ".webm")
    assert container_for("") == ("webm", ".webm")


def test_h264_annex_b_frames_are_remuxed_into_matroska_that_decodes(tmp_path: Path) -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    # What a device sends over RTP: Annex B, parameter sets in the stream, no B-frames.
    encoder.options = {"tune": "zerolatency", "bframes": "0"}
    frames: list[bytes] = []
    for index in range(20):
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane in picture.planes:
            plane.update(bytes([(index * 8) % 256]) * plane.buffer_size)
        picture.pts = index * 3000
        frames += [bytes(packet) for packet in encoder.encode(picture)]
    frames += [bytes(packet) for packet in encoder.encode(None)]
    feed = FeedFile(tmp_path / "device-f2.mkv", video_codec="h264", audio_codec="")
    for index, frame in enumerate(frames):
        feed.write_video(index * 3000, frame)
    feed.close()
    assert feed.video_packets == len(frames)
    with av.open(str(tmp_path / "device-f2.mkv")) as container:
        assert [stream.codec_context.name for stream in container.streams] == ["h264"]
        decoded = [frame for packet in container.demux() for frame in packet.decode()]
    assert len(decoded) == len(frames) and {(f.width, f.height) for f in decoded} == {(WIDTH, HEIGHT)}
