"""A recording whose disk fills up fails with 100106 ("磁盘满或者写文件失败"): the recorder's storage folder
is a 64 KiB tmpfs mounted for this module (root only: skipped where mounting is not allowed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from parley.recorder.v1 import recorder_pb2

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.testing import Facts, Platform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount_point = tmp_path_factory.mktemp("small-disk")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory, small_disk: Path) -> AsyncIterator[Platform]:
    # The conftest's `app` and `clients` run on this platform (its ws_url and licence).
    async with start_platform(
        tmp_path_factory.mktemp("platform"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.RECORDER,
        ServiceName.GATEWAY,
        settings={"recorder": {"storage_dir": str(small_disk)}},
    ) as started:
        await started.consumers_joined(ServiceName.ROOMS, ServiceName.RECORDER)
        yield started


@pytest.fixture(scope="module")
async def facts(platform: Platform) -> Facts:
    return await platform.record([Topic.RECORDING], [recorder_pb2.RecordingEvent], timeout_s=60)


async def test_a_full_disk_fails_the_recording_with_100106(
    platform: Platform, facts: Facts, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    record_id = (
        await alice.ok(
            "start_record", room_id=room["room_id"], record_param={"mode": "single", "format": "mkv"}
        )
    )["record_id"]
    failed = await alice.event("on_remote_recording_failed")
    assert (failed["record_id"], failed["code"], failed["event_code"]) == (record_id, -12482, 100106)
    await facts.wait_for(record_id, event_code=99)
    codes = facts.values(record_id, "event_code")
    # The small disk is short of space from the start: warning 50 comes once, if the recorder looked
    # (once a second) before the disk filled.
    assert [code for code in codes if code != 50] == [10, 100106, 99] and codes.count(50) <= 1
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    assert (info["state"], info["status"], info["failure_code"]) == ("failed", 3, 100106)
