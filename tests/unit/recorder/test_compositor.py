"""A composite recording from encoded frames: two feeds of solid colours composed in a grid or picture in
picture, sound mixed, watermarks drawn; the file is read back with ffprobe and its last picture decoded
to check every feed is in its cell and each watermark in its place. Layout geometry and recordParam
parsing are checked without media."""

from __future__ import annotations

import functools
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.core.errors import ParleyError
from services.recorder.compositor import CompositeInput, Compositor, CompositorFailed
from services.recorder.layout import place
from services.recorder.params import Layout, RecordOptions, Rect, parse_overlaps, parse_record_param
from tests.ffprobe import probe
from tests.pictures import bright_pixels, colour_at, near, pictures

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)


@functools.cache
def coloured_frames(codec: str, colour: tuple[int, int, int], count: int) -> list[bytes]:
    """`count` frames of 320x240 of one colour, encoded as a publisher's VP8 or H.264 encoder would."""
    encoder = av.CodecContext.create({"vp8": "libvpx", "h264": "libx264"}[codec], "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    encoder.gop_size = 10
    if codec == "h264":
        encoder.options = {"tune": "zerolatency", "bframes": "0"}
    picture = np.zeros((240, 320, 3), dtype=np.uint8)
    picture[:] = colour
    frames: list[bytes] = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = index * 3600
        frames += [bytes(packet) for packet in encoder.encode(frame)]
    return frames + [bytes(packet) for packet in encoder.encode(None)]


@functools.cache
def opus_frames(count: int) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = Fraction(1, 48000)
    packets: list[bytes] = []
    for index in range(count):
        tone = (8000 * np.sin(2 * np.pi * 440 * (np.arange(960) + index * 960) / 48000)).astype("<i2")
        sound = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
        sound.sample_rate = 48000
        sound.pts = index * 960
        packets += [bytes(packet) for packet in encoder.encode(sound)]
    return packets


Feeds = dict[str, tuple[str, str, tuple[int, int, int]]]


def run(
    compositor: Compositor, feeds: Feeds, seconds: float, inputs: dict[str, CompositeInput] | None = None
) -> dict[str, CompositeInput]:
    """Feeds (feed_id -> tag, video codec, colour) send 25 pictures and 50 sounds a second, in real time;
    their inputs (joined now unless given)."""
    if inputs is None:
        inputs = {
            feed_id: compositor.input(feed_id, f"u-{feed_id}", tag, codec, "opus")
            for feed_id, (tag, codec, _) in feeds.items()
        }
    count = int(seconds * 25)
    encoded = {
        feed_id: coloured_frames(codec, colour, count) for feed_id, (_, codec, colour) in feeds.items()
    }
    sounds = opus_frames(count * 2)
    start = time.monotonic()
    for index in range(count):
        for feed_id, sink in inputs.items():
            sink.write_video(index * 3600, encoded[feed_id][index])
            for sound in sounds[2 * index : 2 * index + 2]:
                sink.write_audio(index * 1920, sound)
        time.sleep(max(0.0, start + (index + 1) / 25 - time.monotonic()))
    return inputs


def failures() -> list[CompositorFailed]:
    return []


def test_a_grid_shows_each_feed_in_its_cell_with_its_watermarks_and_mixed_sound(tmp_path: Path) -> None:
    options = parse_record_param(
        '{"layoutParam": ["left", "right"], "background": "#000000", "overlaps": ['
        '{"enable": true, "type": 2, "text": "PARLEY", "fontSize": 24, "xPosition": 10, "yPosition": 300},'
        '{"enable": true, "type": 1, "tag": "right", "fontSize": 16, "xPosition": 8, "yPosition": 70}]}'
    )
    failed = failures()
    coloured_frames("h264", BLUE, 50), coloured_frames("vp8", RED, 50)
    started = time.monotonic()
    compositor = Compositor(tmp_path / "r1.mp4", options, on_failure=failed.append)
    # Tags name the cells: "right" joins first and is still drawn on the right.
    run(compositor, {"f2": ("right", "h264", BLUE), "f1": ("left", "vp8", RED)}, seconds=2.0)
    compositor.close()
    recorded_s = time.monotonic() - started
    assert failed == []
    found = probe(tmp_path / "r1.mp4")
    assert found.codecs == {"video": "h264", "audio": "aac"}
    assert (found.width, found.height) == (640, 360)
    assert abs(found.duration_s - recorded_s) < 0.5, (found.duration_s, recorded_s)
    assert abs(compositor.duration_ms / 1000 - recorded_s) < 0.5
    assert found.size_bytes > 0 and compositor.video_packets == found.frames["video"]
    picture = pictures(tmp_path / "r1.mp4")[-1]
    # Grid of two: cells of 320x360; a 4:3 picture fills 320x240 of its cell, centred (y 60..300).
    assert near(colour_at(picture, 160, 180), RED) and near(colour_at(picture, 480, 180), BLUE)
    assert near(colour_at(picture, 160, 30), (0, 0, 0)) and near(colour_at(picture, 480, 330), (0, 0, 0))
    # The text on the black band under the left cell, the timestamp on the right cell's picture.
    assert bright_pixels(picture, Rect(10, 300, 100, 30)) > 50
    assert bright_pixels(picture, Rect(330, 300, 300, 60)) == 0
    assert bright_pixels(picture, Rect(328, 70, 200, 20)) > 50
    assert bright_pixels(picture, Rect(10, 70, 200, 20)) == 0
    with av.open(str(tmp_path / "r1.mp4")) as container:
        sound = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    # Two 440 Hz tones mixed: loud, not silence.
    assert np.abs(sound).max() > 0.3


def test_picture_in_picture_a_watermark_change_and_a_pause(tmp_path: Path) -> None:
    options = parse_record_param('{"layout": "pip", "format": "flv", "width": 640, "height": 360}')
    failed = failures()
    coloured_frames("vp8", GREEN, 25), coloured_frames("vp8", RED, 25)
    started = time.monotonic()
    compositor = Compositor(tmp_path / "r2.flv", options, on_failure=failed.append)
    compositor.set_overlays(
        parse_overlaps(
            [{"enable": True, "type": 2, "text": "CHANGED", "fontSize": 30, "xPosition": 20, "yPosition": 20}]
        )
    )
    feeds: Feeds = {"main": ("cam", "vp8", GREEN), "inset": ("cam2", "vp8", RED)}
    inputs = run(compositor, feeds, seconds=1.0)
    compositor.pause()
    for sink in inputs.values():
        sink.pause()
    time.sleep(1.0)
    # The inset's feed ends during the pause.
    inputs.pop("inset").close()
    compositor.resume()
    run(compositor, {"main": feeds["main"]}, seconds=1.0, inputs=inputs)
    compositor.close()
    recorded_s = time.monotonic() - started - 1.0
    assert failed == []
    found = probe(tmp_path / "r2.flv")
    assert found.codecs == {"video": "h264", "audio": "aac"}
    # The second of pause is left out of the file.
    assert abs(found.duration_s - recorded_s) < 0.5, (found.duration_s, recorded_s)
    decoded = pictures(tmp_path / "r2.flv")
    with_inset = decoded[15]
    # Main full size; the inset a quarter of the size at the bottom right.
    assert near(colour_at(with_inset, 100, 200), GREEN)
    assert near(colour_at(with_inset, 640 - 8 - 80, 360 - 8 - 45), RED)
    assert bright_pixels(with_inset, Rect(20, 20, 120, 30)) > 50
    # The inset's feed has gone: after the pause only the main feed is drawn.
    assert near(colour_at(decoded[-1], 640 - 8 - 80, 360 - 8 - 45), GREEN)


def test_an_unwritable_folder_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_bytes(b"")
    with pytest.raises(OSError):
        Compositor(tmp_path / "blocked" / "r.mp4", RecordOptions(), on_failure=failures().append)


def test_layouts() -> None:
    grid = place([("a", "t1"), ("b", "t2"), ("c", "t3")], RecordOptions(width=640, height=360))
    assert [p.cell for p in grid] == [Rect(0, 0, 320, 180), Rect(320, 0, 320, 180), Rect(0, 180, 320, 180)]
    # layoutParam orders the cells and leaves out other tags.
    ordered = place([("a", "t1"), ("b", "t2"), ("c", "x")], RecordOptions(layout_tags=("t2", "t1")))
    assert [p.feed_id for p in ordered] == ["b", "a"]
    pip = place([("a", "t1"), ("b", "t2")], RecordOptions(layout=Layout.PIP))
    assert [p.cell for p in pip] == [Rect(0, 0, 640, 360), Rect(472, 262, 160, 90)]
    custom = place([("a", "t1"), ("b", "t2")], RecordOptions(tag_positions={"t2": Rect(10, 20, 100, 50)}))
    assert [(p.feed_id, p.cell) for p in custom] == [("b", Rect(10, 20, 100, 50))]
    # A 4:3 picture in a 16:9 cell keeps its shape, centred.
    assert grid[0].fit(640, 480) == Rect(40, 0, 240, 180)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ('{"format": "avi"}', "format"),
        ('{"width": "wide"}', "width"),
        ('{"mediaType": 3}', "mediaType"),
        ('{"overlaps": [{"enable": true, "type": 9}]}', "overlap"),
        ('{"overlaps": [{"enable": true, "type": 3, "url": "ftp://example.com/x.png"}]}', "http(s)"),
        ('{"splitFilePath": "../up"}', "splitFilePath"),
        ('{"splitType": 1, "mediaType": 1}', "splitType"),
        ('{"tagPositions": [{"tag": "a", "position": {"xPosition": 0}}]}', "tagPositions"),
        ("[1]", "object"),
    ],
)
def test_bad_record_params_are_refused(param: str, message: str) -> None:
    with pytest.raises(ParleyError) as refused:
        parse_record_param(param)
    assert refused.value.code == -91035 and message in refused.value.message


def test_record_param_defaults_are_the_seeds() -> None:
    options = parse_record_param("{}")
    assert (options.width, options.height, options.end_type, options.start_timeout_s) == (640, 360, 0, 10.0)
    assert (options.mode, options.format, options.media_type, options.split_type) == (
        "composite",
        "mp4",
        0,
        0,
    )
