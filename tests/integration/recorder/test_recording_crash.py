"""The recorder killed with SIGKILL mid-recording (its own OS process here, tests/testing.py): the
fragmented MP4 it leaves plays up to the kill, and once the recorder is back the job is failed with
100105 ("录制子进程崩溃") and its result reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from parley.recorder.v1 import recorder_pb2

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.ffprobe import probe
from tests.testing import Facts, Instance, Platform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    # The conftest's `app` and `clients` run on this platform (its ws_url and licence).
    async with start_platform(
        tmp_path_factory.mktemp("platform"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        Instance(ServiceName.RECORDER, process=True),
        ServiceName.GATEWAY,
    ) as started:
        await started.consumers_joined(ServiceName.ROOMS)
        yield started


@pytest.fixture(scope="module")
async def facts(platform: Platform) -> Facts:
    return await platform.record([Topic.RECORDING], [recorder_pb2.RecordingEvent], timeout_s=60)


async def test_a_killed_recorder_leaves_a_playable_file_and_fails_the_job_when_back(
    platform: Platform, facts: Facts, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    record_id = (await alice.ok("start_record", room_id=room["room_id"]))["record_id"]
    async with asyncio.timeout(30):
        while True:
            [file] = (await alice.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if file["video_packets"] >= 75:
                break
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    await platform.kill(ServiceName.RECORDER)

    path = platform[ServiceName.RECORDER].settings.recordings_dir() / file["path"]
    found = probe(path)
    # Everything up to the last fragment before the kill (a fragment at least every second).
    assert found.codecs == {"video": "h264", "audio": "aac"} and (found.width, found.height) == (640, 360)
    assert found.duration_s >= 2.0 and found.frames["video"] >= 50

    await platform.restart(ServiceName.RECORDER)
    crashed = await facts.wait_for(record_id, event_code=100105)
    assert crashed.state == recorder_pb2.RECORD_STATE_FAILED
    result = (await facts.wait_for(record_id, event_code=99)).record_result
    assert result.status == 3 and [f.size_bytes for f in result.files] == [path.stat().st_size]
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    assert (info["state"], info["status"], info["failure_code"]) == ("failed", 3, 100105)
