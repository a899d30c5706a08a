"""The room manager's unit tests run on each room store: the in-process one, one that copies records in and
out as a replicated store would (tests/unit/rooms/test_room_manager.py, CopyingRoomStore), and the Redis
store, whose cache of the records it owns and its indexes are what the rules run on (it reaches Redis, and
the records their JSON form, only on commit, which tests/integration/rooms/test_room_stores.py covers)."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from services.rooms.redis_store import RedisRoomStore
from services.rooms.store import InProcessRoomStore, RoomStore
from tests.redis_keys import DEFAULT_REDIS_URL
from tests.unit.rooms.test_room_manager import CopyingRoomStore, World


def _redis_store() -> RoomStore:
    # The client connects on first use, which these tests never make.
    return RedisRoomStore(redis.Redis.from_url(DEFAULT_REDIS_URL))


@pytest.fixture(
    params=[InProcessRoomStore, CopyingRoomStore, _redis_store],
    ids=["in_process", "copying", "redis_records"],
)
def world(request: pytest.FixtureRequest) -> World:
    return World(request.param())
