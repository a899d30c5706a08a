"""A two-party call recorded per feed (recordParam `mode: "single"`) in each container and media type:
alice publishes VP8 + Opus (a browser), bob H.264 + Opus (a device). Every file is read by Debian's
ffprobe: its streams and codecs, its size, and a duration within 0.5 s of the time it was recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.ffprobe import probe

pytestmark = pytest.mark.integration

RECORD_S = 3.0
WARM_UP_S = 1.5
WALL_CLOCK_SLACK_S = 1.5


async def record_call(
    platform: Any, clients: Any, publishers: Any, record_param: dict[str, Any]
) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """A call of alice (VP8) and bob (H.264) recorded for RECORD_S once media flows: the stop's answer,
    the result event (99), and each feed's publisher."""
    alice = await clients()
    bob = await clients()
    room = await alice.ok("create_room")
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    feeds = {
        await publishers().publish(alice): "vp8",
        await publishers(video="video/H264").publish(bob): "h264",
    }
    # The publishers' encoders start slowly on a busy machine and then catch up with a burst of frames
    # stamped with their media time: the recording starts once they send at their pace.
    await asyncio.sleep(WARM_UP_S)
    record_id = (await alice.ok("start_record", room_id=room["room_id"], record_param=record_param))[
        "record_id"
    ]
    async with asyncio.timeout(30):
        while True:
            files = (await alice.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if {f["feed_id"] for f in files} == set(feeds) and all(
                f["audio_packets"] + f["video_packets"] > 0 for f in files
            ):
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(RECORD_S)
    stopped = await alice.ok("stop_record", record_id=record_id)
    result = (await platform.events.wait_for(record_id, event_code=99)).record_result
    return stopped, result, feeds


def check_duration(file: dict[str, Any], found: Any) -> None:
    """The file holds the media the recorder says it wrote, and about as long as it recorded.

    A remuxed file is timed by the senders' RTP timestamps, not by the recorder's clock: on a loaded
    machine aiortc's test senders stall and then catch up in bursts (and the receiver's jitter buffer
    drops some of a burst), so media time and wall time part by up to a second. The file is held to the
    recorder's own count within 0.5 s, and to the wall clock within WALL_CLOCK_SLACK_S. (Composites
    are timed by the recorder's clock and held to 0.5 s of it: test_recording_composite.py.)"""
    recorded_s = (file["ended_at_ms"] - file["first_frame_ms"]) / 1000
    assert recorded_s >= RECORD_S
    assert abs(found.duration_s - file["duration_ms"] / 1000) < 0.5, (found.duration_s, file["duration_ms"])
    assert abs(found.duration_s - recorded_s) < WALL_CLOCK_SLACK_S, (found.duration_s, recorded_s)


@pytest.mark.parametrize(
    ("fmt", "format_name", "codecs"),
    [
        # H.264 remuxed; VP8 transcoded to H.264; Opus to AAC.
        ("mp4", "mov,mp4,m4a,3gp,3g2,mj2", {"vp8": ("h264", "aac"), "h264": ("h264", "aac")}),
        ("flv", "flv", {"vp8": ("h264", "aac"), "h264": ("h264", "aac")}),
        # Matroska takes both video codecs and Opus as they are.
        ("mkv", "matroska,webm", {"vp8": ("vp8", "opus"), "h264": ("h264", "opus")}),
    ],
)
async def test_each_feed_is_recorded_into_the_format_asked(
    platform: Any, clients: Any, publishers: Any, fmt: str, format_name: str, codecs: dict[str, Any]
) -> None:
    stopped, result, feeds = await record_call(
        platform, clients, publishers, {"mode": "single", "format": fmt}
    )
    assert stopped["status"] == 2 and result.status == 2 and result.media_type == 0
    assert {f["feed_id"] for f in stopped["files"]} == set(feeds)
    for file in stopped["files"]:
        expected = codecs[feeds[file["feed_id"]]]
        assert file["name"].endswith(f".{fmt}")
        assert (file["video_codec"], file["audio_codec"], file["media_type"]) == (*expected, 0)
        path = platform.storage_dir / file["path"]
        found = probe(path)
        assert found.format_name == format_name
        assert found.codecs == {"video": expected[0], "audio": expected[1]}
        assert found.size_bytes == file["size"] == path.stat().st_size
        assert (found.width, found.height) == (640, 480) and found.frames["video"] >= 30 * RECORD_S * 0.8
        check_duration(file, found)


async def test_split_files_and_media_types(platform: Any, clients: Any, publishers: Any) -> None:
    # Seed 002 splitType 1: an extra audio-only file per feed, in splitFilePath.
    stopped, result, feeds = await record_call(
        platform, clients, publishers, {"mode": "single", "splitType": 1, "splitFilePath": "split"}
    )
    files = {(f["feed_id"], f["media_type"]): f for f in stopped["files"]}
    assert set(files) == {(feed, kind) for feed in feeds for kind in (0, 1)}
    for (_, media_type), file in files.items():
        found = probe(platform.storage_dir / file["path"])
        if media_type == 1:
            assert file["path"].startswith("split/") and file["name"].endswith("-audio.mp4")
            assert found.codecs == {"audio": "aac"}
        else:
            assert found.codecs == {"video": "h264", "audio": "aac"}
        check_duration(file, found)

    # mediaType 1: audio only, nothing subscribed or written of the video.
    stopped, result, feeds = await record_call(
        platform, clients, publishers, {"mode": "single", "mediaType": 1, "format": "flv"}
    )
    assert result.media_type == 1
    for file in stopped["files"]:
        assert (file["video_codec"], file["audio_codec"], file["media_type"]) == ("", "aac", 1)
        found = probe(platform.storage_dir / file["path"])
        assert found.codecs == {"audio": "aac"}
        check_duration(file, found)
