"""Composite recordings (the seed's default) of a two-party call over protocol v1: alice's camera sees
red (VP8), bob's blue (H.264). The file is read with ffprobe, and decoded pictures show each participant
in its cell and each watermark where it was asked, also after ChangeRemoteRecordWatermark."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.recorder.params import Rect
from tests.ffprobe import probe
from tests.integration.recorder.conftest import until_media
from tests.pictures import bright_pixels, colour_at, near, pictures

pytestmark = pytest.mark.integration

RED, BLUE = (220, 30, 30), (30, 30, 220)
RECORD_S = 3.0


async def call(clients: Any, publishers: Any) -> tuple[Any, Any, dict[str, Any]]:
    """A room of alice (red, VP8, tag "left") and bob (blue, H.264, tag "right"), both publishing."""
    alice = await clients()
    bob = await clients()
    room = await alice.ok("create_room")
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    await publishers(colour=RED).publish(alice, tag="left")
    await publishers(video="video/H264", colour=BLUE).publish(bob, tag="right")
    return alice, bob, room


async def test_a_grid_with_watermarks_changed_while_recording(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice, bob, room = await call(clients, publishers)
    # A feed whose tag layoutParam leaves out: reported 100007 and not recorded.
    screen = await publishers(colour=(0, 255, 0)).publish(alice, tag="screen")
    text = {"enable": True, "type": 2, "text": "PARLEY", "fontSize": 24, "xPosition": 10, "yPosition": 300}
    record_id = (
        await alice.ok(
            "start_record",
            room_id=room["room_id"],
            record_param={"layoutParam": ["left", "right"], "overlaps": [text]},
        )
    )["record_id"]
    await until_media(alice, record_id, packets=25)
    # Until both feeds are drawn (the second may have connected later), then the watermark changes.
    await asyncio.sleep(1.0)
    stamp = {"enable": True, "type": 1, "tag": "right", "fontSize": 16, "xPosition": 8, "yPosition": 70}
    assert await bob.ok("change_record_watermark", record_id=record_id, overlaps=[stamp]) == {
        "record_id": record_id
    }
    refused = await bob.call("change_record_watermark", record_id=record_id, overlaps=[{"type": 7}])
    assert (refused["code"], refused["reason"]) == (-10381, "WATERMARK_FAILED")
    await asyncio.sleep(RECORD_S)
    stopped = await alice.ok("stop_record", record_id=record_id)

    [file] = stopped["files"]
    assert (file["feed_id"], file["uid"], file["name"]) == ("", "", f"{record_id}.mp4")
    assert (file["video_codec"], file["audio_codec"], file["media_type"]) == ("h264", "aac", 0)
    found = probe(platform.storage_dir / file["path"])
    assert found.codecs == {"video": "h264", "audio": "aac"} and (found.width, found.height) == (640, 360)
    assert found.size_bytes == file["size"]
    recorded_s = (file["ended_at_ms"] - file["first_frame_ms"]) / 1000
    assert recorded_s >= RECORD_S and abs(found.duration_s - recorded_s) < 0.5

    decoded = pictures(platform.storage_dir / file["path"])
    first_of_both = next(
        i
        for i, p in enumerate(decoded)
        if near(colour_at(p, 160, 180), RED) and near(colour_at(p, 480, 180), BLUE)
    )
    before, last = decoded[first_of_both], decoded[-1]
    # Grid of two 320x360 cells, alice (tag "left") left, bob right; 4:3 pictures at y 60..300.
    for picture in (before, last):
        assert near(colour_at(picture, 160, 180), RED) and near(colour_at(picture, 480, 180), BLUE)
        assert near(colour_at(picture, 160, 30), (0, 0, 0))
        # No green anywhere: the "screen" feed is not in the picture.
        assert not near(colour_at(picture, 320, 180), (0, 255, 0))
    assert bright_pixels(before, Rect(10, 300, 100, 30)) > 50
    assert bright_pixels(last, Rect(10, 300, 100, 30)) == 0
    # The timestamp at (8, 70) of bob's cell (x 320).
    assert bright_pixels(last, Rect(328, 70, 200, 20)) > 50 and bright_pixels(last, Rect(8, 70, 200, 20)) == 0

    await platform.events.wait_for(record_id, event_code=99)
    codes = platform.events.values(record_id, "event_code")
    assert codes == [10, 100007, 0, 11, 99]
    [left_out] = [e for e in platform.events.events(record_id) if e.event_code == 100007]
    assert left_out.feed_id == screen


async def test_picture_in_picture_and_an_audio_only_composite(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice, _, room = await call(clients, publishers)
    record_id = (
        await alice.ok(
            "start_record",
            room_id=room["room_id"],
            record_param={"layout": "pip", "layoutParam": ["right", "left"], "format": "flv", "splitType": 1},
        )
    )["record_id"]
    await until_media(alice, record_id, packets=25)
    await asyncio.sleep(RECORD_S)
    stopped = await alice.ok("stop_record", record_id=record_id)
    files = {f["media_type"]: f for f in stopped["files"]}
    assert set(files) == {0, 1} and files[1]["name"] == f"{record_id}-audio.flv"
    assert probe(platform.storage_dir / files[1]["path"]).codecs == {"audio": "aac"}
    found = probe(platform.storage_dir / files[0]["path"])
    assert found.codecs == {"video": "h264", "audio": "aac"}
    last = pictures(platform.storage_dir / files[0]["path"])[-1]
    # Bob (first in layoutParam) the whole picture, alice the inset at the bottom right.
    assert near(colour_at(last, 100, 180), BLUE)
    assert near(colour_at(last, 640 - 8 - 80, 360 - 8 - 45), RED)

    # mediaType 1: one mixed sound, no picture.
    record_id = (await alice.ok("start_record", room_id=room["room_id"], record_param={"mediaType": 1}))[
        "record_id"
    ]
    await asyncio.sleep(RECORD_S)
    [file] = (await alice.ok("stop_record", record_id=record_id))["files"]
    assert (file["video_codec"], file["audio_codec"], file["media_type"]) == ("", "aac", 1)
    found = probe(platform.storage_dir / file["path"])
    recorded_s = (file["ended_at_ms"] - file["first_frame_ms"]) / 1000
    assert found.codecs == {"audio": "aac"} and abs(found.duration_s - recorded_s) < 0.5
