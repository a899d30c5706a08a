"""Two room managers on one Redis store (real Redis, a key prefix of their own), as processes: the first
leads and serves, the other stands by without serving; when the leader is killed with SIGKILL the other
takes the lead and the room over once their leases ran out, serves it, and fires its timers (the empty
room's grace ends there, its fact published once)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.integration.rooms.test_rooms_survive_restart import on_redis, until_found
from tests.redis_keys import fresh_prefix
from tests.testing import Instance, start_platform

ROOM_LEASE_S = 1.0
EMPTY_ROOM_GRACE_S = 8.0


async def test_the_other_room_manager_takes_over_the_rooms_of_one_killed(tmp_path: Path) -> None:
    async with fresh_prefix() as (_, prefix):
        settings = on_redis(prefix, room_lease_s=ROOM_LEASE_S, empty_room_grace_s=EMPTY_ROOM_GRACE_S)
        async with start_platform(
            tmp_path,
            Instance(ServiceName.ROOMS, process=True),
            settings=settings,
        ) as platform:
            # Started once the first leads, so that it stands by.
            await platform.start(Instance(ServiceName.ROOMS, process=True, standby=True))
            facts = await platform.record([Topic.ROOM], [events_pb2.RoomCreated, events_pb2.RoomDestroyed])
            first = platform.stub(RoomServiceStub, "rooms")
            other = platform.stub(RoomServiceStub, "rooms-2")
            room = (
                await first.CreateRoom(
                    rooms_pb2.CreateRoomRequest(biz_name="biz", creator_uid="alice"), timeout=5
                )
            ).room
            empty_since = time.monotonic()
            await facts.wait_for(room.room_id, "RoomCreated")
            # While the leader lives, the other does not serve: nothing reaches it to act on the room.
            await asyncio.sleep(ROOM_LEASE_S * 2)
            with pytest.raises(grpc.aio.AioRpcError) as standing_by:
                await other.GetRoom(rooms_pb2.GetRoomRequest(room_id=room.room_id), timeout=5)
            assert standing_by.value.code() is grpc.StatusCode.UNAVAILABLE

            await platform.kill("rooms")
            await platform.until_serving("rooms-2")
            taken = await until_found(other, room.room_id, within_s=ROOM_LEASE_S * 3)
            assert (taken.rtoken, taken.creator_uid) == (room.rtoken, "alice")

            destroyed = await facts.wait_for(room.room_id, "RoomDestroyed")
            assert destroyed.room_id == room.room_id
            assert time.monotonic() - empty_since >= EMPTY_ROOM_GRACE_S
            await asyncio.sleep(1)
            assert facts.types(room.room_id) == ["RoomCreated", "RoomDestroyed"]
