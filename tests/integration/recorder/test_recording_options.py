"""recordParam options that decide when a recording ends or fails (seed 002 appendix 7): endType 0 (the
default) ends it when its caller leaves the room, endType 1 only with the room; recordTotalStream with
startTimeout fails it with 100004 when fewer streams are recording by then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def test_end_type_0_ends_with_the_caller_and_1_with_the_room(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    bob = await clients()
    room = await alice.ok("create_room")
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    await publishers().publish(alice)
    by_bob = (await bob.ok("start_record", room_id=room["room_id"], record_param={"mode": "single"}))[
        "record_id"
    ]
    await asyncio.sleep(1.5)
    await bob.ok("leave_room")
    # Bob started it (endType 0, the seed's default): it ends with him, its files complete.
    result = (await platform.events.wait_for(by_bob, event_code=99)).record_result
    assert result.status == 2 and len(result.files) == 1
    assert platform.events.values(by_bob, "event_code") == [10, 0, 11, 99]

    carol = await clients()
    await carol.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    by_carol = (await carol.ok("start_record", room_id=room["room_id"], record_param={"endType": 1}))[
        "record_id"
    ]
    await carol.ok("leave_room")
    await asyncio.sleep(1.5)
    # endType 1: carol's leaving does not end it; the room's end (or a stop) does.
    info = (await alice.ok("get_record_info", record_id=by_carol))["record_info"]
    assert info["state"] == "recording"
    await alice.ok("stop_record", record_id=by_carol)


async def test_fewer_streams_than_record_total_stream_fail_with_100004(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    record_id = (
        await alice.ok(
            "start_record", room_id=room["room_id"], record_param={"recordTotalStream": 2, "startTimeout": 2}
        )
    )["record_id"]
    failed = await alice.event("on_remote_recording_failed")
    assert (failed["record_id"], failed["code"], failed["event_code"]) == (record_id, -12481, 100004)
    assert "1 of at least 2 streams" in failed["msg"]
    # The composite so far is kept and listed in the result.
    result = (await platform.events.wait_for(record_id, event_code=99)).record_result
    assert result.status == 3 and len(result.files) == 1
    assert platform.events.values(record_id, "event_code") == [10, 100004, 99]


async def test_a_silent_recording_is_not_announced_in_the_room(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    silent = (await alice.ok("start_record", room_id=room["room_id"], record_param={"silentRecord": True}))[
        "record_id"
    ]
    await asyncio.sleep(1.0)
    await alice.ok("stop_record", record_id=silent)
    result = await platform.events.wait_for(silent, event_code=99)
    assert result.silent and result.record_result.status == 2
    heard = (await alice.ok("start_record", room_id=room["room_id"]))["record_id"]
    await alice.ok("stop_record", record_id=heard)
    # The next push is the announced recording's: the silent one's result was never pushed.
    over = await alice.event("on_remote_record_over")
    assert over["record_id"] == heard
