"""Cloud recording over protocol v1 with the real recorder: a participant publishes VP8 + Opus, records,
pauses, resumes and stops; the file holds what was published (opened and decoded here, never in the
recorder), the participants hear the end, and the job and its events are as the seed names them."""

from __future__ import annotations

import asyncio
import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from tests.ffprobe import probe

pytestmark = pytest.mark.integration

PAUSE_S = 2.0


async def wait_for_packets(client: Any, record_id: str, *, video: int, audio: int) -> None:
    """Until the recording's file has that many packets written (get_record_info counts them live)."""
    async with asyncio.timeout(30):
        while True:
            files = (await client.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if files and files[0]["video_packets"] >= video and files[0]["audio_packets"] >= audio:
                return
            await asyncio.sleep(0.2)


def read_file(path: Path) -> dict[str, Any]:
    """Demux and decode the whole file: codecs, packets, decoded frames, video timestamps in seconds."""
    with av.open(str(path)) as container:
        codecs = {stream.type: stream.codec_context.name for stream in container.streams}
        packets = {"video": 0, "audio": 0}
        decoded = {"video": 0, "audio": 0}
        video_times: list[float] = []
        sizes = set()
        for packet in container.demux():
            if packet.size == 0:
                continue
            kind = packet.stream.type
            packets[kind] += 1
            if kind == "video" and packet.pts is not None:
                video_times.append(float(packet.pts * Fraction(packet.time_base)))
            for frame in packet.decode():
                decoded[kind] += 1
                if kind == "video":
                    sizes.add((frame.width, frame.height))
    return {
        "codecs": codecs,
        "packets": packets,
        "decoded": decoded,
        "video_times": video_times,
        "sizes": sizes,
    }


async def test_record_pause_resume_stop_gives_a_decodable_file_and_tells_the_room(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    bob = await clients()
    room = await alice.ok("create_room", ext={"defaultRecord": False})
    assert room["record_id"] == ""
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    feed_id = await publishers().publish(alice)

    started = await bob.ok(
        "start_record",
        room_id=room["room_id"],
        record_third_id="batch-1",
        record_param={"mode": "single", "format": "webm"},
    )
    record_id = started["record_id"]
    assert started == {"record_id": record_id, "record_third_id": "batch-1"}
    again = await alice.call("start_record", room_id=room["room_id"])
    assert (again["code"], again["reason"]) == (-91032, "ALREADY_RECORDING")

    await wait_for_packets(bob, record_id, video=60, audio=100)
    paused = await alice.ok("pause_record", record_id=record_id)
    assert paused["state"] == "paused"
    twice = await alice.call("pause_record", record_id=record_id)
    assert (twice["code"], twice["reason"]) == (-10342, "PAUSE_RECORD_STATE")
    await asyncio.sleep(PAUSE_S)
    assert (await alice.ok("resume_record", record_id=record_id))["state"] == "recording"
    await asyncio.sleep(1.5)

    stopped = await alice.ok("stop_record", record_id=record_id)
    assert stopped["state"] == "ended" and stopped["status"] == 2
    [file] = stopped["files"]
    assert (file["feed_id"], file["uid"]) == (feed_id, alice.uid)
    assert (file["video_codec"], file["audio_codec"], file["media_type"]) == ("vp8", "opus", 0)
    assert file["name"].endswith(".webm") and file["ended_at_ms"] >= file["started_at_ms"]

    for participant in (alice, bob):
        over = await participant.event("on_remote_record_over")
        assert (over["room_id"], over["record_id"], over["status"]) == (room["room_id"], record_id, 2)
        assert [f["name"] for f in over["files"]] == [file["name"]]

    info = (await bob.ok("get_record_info", record_id=record_id))["record_info"]
    assert info["files"] == stopped["files"] and info["state"] == "ended"
    assert info["record_third_id"] == "batch-1"
    after = await alice.call("stop_record", record_id=record_id)
    assert (after["code"], after["reason"]) == (-91034, "RECORD_ENDED")

    path = platform.storage_dir / file["path"]
    assert path.stat().st_size == file["size"] > 0
    media = read_file(path)
    assert media["codecs"] == {"video": "vp8", "audio": "opus"}
    assert (media["packets"]["video"], media["packets"]["audio"]) == (
        file["video_packets"],
        file["audio_packets"],
    )
    # aiortc's test tracks send 30 frames/s of video and 50/s of audio; over a few seconds of recording.
    assert media["packets"]["video"] >= 60 and media["packets"]["audio"] >= 100
    assert media["decoded"]["video"] == media["packets"]["video"]
    assert media["decoded"]["audio"] >= media["packets"]["audio"] - 1
    assert media["sizes"] == {(640, 480)}
    times = media["video_times"]
    assert times == sorted(times)
    # The pause is left out: consecutive frames are never as far apart as the pause lasted.
    assert max(b - a for a, b in itertools.pairwise(times)) < PAUSE_S / 2

    events = await platform.events.wait_for(record_id, event_code=99)
    assert events.record_result.status == 2 and events.record_result.file_type == 1
    assert [f.name for f in events.record_result.files] == [file["name"]]
    assert platform.events.values(record_id, "event_code") == [10, 910001, 910002, 0, 11, 99]
    assert all(event.record_third_id == "batch-1" for event in platform.events.events(record_id))
    # The recorder wrote what it received: it created no decoder and no encoder.
    assert platform.guard.recorder_peers and platform.guard.recorder == []


async def test_a_room_created_with_default_record_records_feeds_published_later(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok(
        "create_room", ext={"defaultRecord": True, "recordParam": {"mode": "single", "format": "mkv"}}
    )
    record_id = room["record_id"]
    assert record_id
    assert (await alice.ok("get_record_info", record_id=record_id))["record_info"]["state"] == "recording"
    feed_id = await publishers().publish(alice)
    await wait_for_packets(alice, record_id, video=30, audio=50)
    await alice.ok("unpublish", feed_id=feed_id)
    # The feed's end completes its file (event 0); the recording goes on until it is stopped.
    completed = await platform.events.wait_for(record_id, event_code=0)
    assert completed.feed_id == feed_id and completed.file.ended_at.seconds > 0
    stopped = await alice.ok("stop_record", record_id=record_id)
    [file] = stopped["files"]
    media = read_file(platform.storage_dir / file["path"])
    assert media["codecs"] == {"video": "vp8", "audio": "opus"} and media["decoded"]["video"] >= 30
    await alice.event("on_remote_record_over")
    await platform.events.wait_for(record_id, event_code=99)
    assert platform.events.values(record_id, "event_code") == [10, 0, 11, 99]


async def test_storage_that_cannot_be_written_fails_the_recording_with_100101(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    # A regular file where the recording's folder would go: no folder can be made under it.
    (platform.storage_dir / "blocked").write_bytes(b"")
    started = await alice.ok("start_record", room_id=room["room_id"], file_path="blocked/here")
    record_id = started["record_id"]

    failed = await alice.event("on_remote_recording_failed")
    assert (failed["record_id"], failed["code"], failed["event_code"]) == (
        record_id,
        -12482,
        100101,
    ) and failed["msg"]
    over = await alice.event("on_remote_record_over")
    assert (over["record_id"], over["status"], over["files"]) == (record_id, 3, [])
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    assert (info["state"], info["status"], info["failure_code"]) == ("failed", 3, 100101)
    await platform.events.wait_for(record_id, event_code=99)
    assert platform.events.values(record_id, "event_code") == [10, 100101, 99]


async def test_bad_requests_are_refused_with_codes(platform: Any, clients: Any) -> None:
    alice = await clients()
    outsider = await clients()
    room = await alice.ok("create_room")
    cases = [
        (outsider, "start_record", {"room_id": room["room_id"]}, -91033),
        (alice, "start_record", {"room_id": "no_such_room"}, -91031),
        (alice, "start_record", {"room_id": room["room_id"], "file_path": "../escape"}, -91035),
        (alice, "stop_record", {"record_id": "r-unknown"}, -91030),
        (alice, "get_record_info", {"record_id": "r-unknown"}, -91030),
        (alice, "pause_record", {}, -91003),
    ]
    for client, cmd, params, code in cases:
        answer = await client.call(cmd, **params)
        assert answer["code"] == code, (cmd, params, answer)
    record_id = (await alice.ok("start_record", room_id=room["room_id"]))["record_id"]
    refused = await outsider.call("pause_record", record_id=record_id)
    assert (refused["code"], refused["reason"]) == (-10341, "PAUSE_ROOM_STATE")
    resumed = await alice.call("resume_record", record_id=record_id)
    assert (resumed["code"], resumed["reason"]) == (-10362, "RESUME_RECORD_STATE")
    await alice.ok("stop_record", record_id=record_id)


async def test_a_g711_feed_is_recorded_not_dropped(platform: Any, clients: Any, publishers: Any) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    g711 = await publishers(video=None, audio="audio/PCMU").publish(alice, tag="phone")
    record_id = (
        await alice.ok(
            "start_record", room_id=room["room_id"], record_param={"mode": "single", "format": "mp4"}
        )
    )["record_id"]
    await wait_for_packets(alice, record_id, video=0, audio=50)
    stopped = await alice.ok("stop_record", record_id=record_id)
    [file] = stopped["files"]
    # MP4 takes no G.711: it is decoded and written as AAC.
    assert (file["feed_id"], file["video_codec"], file["audio_codec"], file["media_type"]) == (
        g711,
        "",
        "aac",
        1,
    )
    found = probe(platform.storage_dir / file["path"])
    assert found.codecs == {"audio": "aac"} and found.duration_s >= 0.8
    await platform.events.wait_for(record_id, event_code=99)
    assert platform.events.values(record_id, "event_code") == [10, 0, 11, 99]
