"""A room manager on the Redis store (real Redis, a key prefix of its own) killed with SIGKILL: the one
started in its place takes over the rooms it left once their leases ran out, their timers still run (an
empty room is still destroyed after its grace, by the new process), and the facts of both processes
reach the topic once each."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.redis_keys import fresh_prefix, redis_url
from tests.testing import Instance, start_platform

# Long enough for a kill and a restart on a loaded machine.
EMPTY_ROOM_GRACE_S = 8.0
# The killed process's leases run out after this; the new process takes its rooms over then.
ROOM_LEASE_S = 1.0


async def test_a_killed_room_manager_s_rooms_and_timers_outlive_it(tmp_path: Path) -> None:
    async with fresh_prefix() as (_, prefix):
        settings = on_redis(prefix, empty_room_grace_s=EMPTY_ROOM_GRACE_S, room_lease_s=ROOM_LEASE_S)
        async with start_platform(
            tmp_path, Instance(ServiceName.ROOMS, process=True), settings=settings
        ) as platform:
            facts = await platform.record([Topic.ROOM], [events_pb2.RoomCreated, events_pb2.RoomDestroyed])
            rooms = platform.stub(RoomServiceStub, ServiceName.ROOMS)
            created = await rooms.CreateRoom(
                rooms_pb2.CreateRoomRequest(biz_name="biz", creator_uid="alice"), timeout=5
            )
            empty_since = time.monotonic()
            room = created.room
            await facts.wait_for(room.room_id, "RoomCreated")

            await platform.kill(ServiceName.ROOMS)
            await platform.restart(ServiceName.ROOMS)
            rooms = platform.stub(RoomServiceStub, ServiceName.ROOMS)

            kept = await until_found(rooms, room.room_id, within_s=ROOM_LEASE_S + 3)
            assert (kept.room_id, kept.rtoken, kept.biz_name, kept.creator_uid) == (
                room.room_id,
                room.rtoken,
                "biz",
                "alice",
            )
            assert time.monotonic() - empty_since < EMPTY_ROOM_GRACE_S, "restart too slow to tell"
            deadline = empty_since + EMPTY_ROOM_GRACE_S + 10
            while time.monotonic() < deadline:
                try:
                    await rooms.GetRoom(rooms_pb2.GetRoomRequest(room_id=room.room_id), timeout=5)
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.NOT_FOUND
                    break
                await asyncio.sleep(0.25)
            else:
                pytest.fail("the empty room outlived its grace after the restart")
            assert time.monotonic() - empty_since >= EMPTY_ROOM_GRACE_S
            await facts.wait_for(room.room_id, "RoomDestroyed")
            await asyncio.sleep(1)
            assert facts.types(room.room_id) == ["RoomCreated", "RoomDestroyed"]


async def until_found(rooms: RoomServiceStub, room_id: str, *, within_s: float) -> rooms_pb2.Room:
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await rooms.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def on_redis(prefix: str, **rules: float) -> dict[str, Any]:
    """Platform settings putting room managers on the Redis store under `prefix`, with these rules."""
    return {"rooms": {"store": "redis", "redis_url": redis_url(), "redis_prefix": prefix, **rules}}
