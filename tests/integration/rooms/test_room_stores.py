"""One suite for every room store (services/rooms/store.py): the in-process one and Redis (real Redis at
127.0.0.1:6379, a key prefix per test). What a store must do for the room manager: hand out records equal
to what was saved (never the saved object's later changes), forget what was deleted, count and list its
rooms, index waiting invitations, and commit. A durable store is also read back by the next room manager
on the same store after a commit, and only what was committed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from services.rooms.redis_store import RedisRoomStore
from services.rooms.state import RoomState
from services.rooms.store import InProcessRoomStore, RoomStore
from tests.redis_keys import fresh_prefix
from tests.unit.rooms.test_room_codec import a_full_room


@dataclass
class Stores:
    first: RoomStore
    # Another room manager's store on the same data (None where nothing outlives the process).
    next: Callable[[], RoomStore] | None


@pytest.fixture(params=["in_process", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "in_process":
        yield Stores(InProcessRoomStore(), None)
        return
    async with fresh_prefix() as (client, prefix):
        yield Stores(RedisRoomStore(client, prefix=prefix), lambda: RedisRoomStore(client, prefix=prefix))


def room(room_id: str, *, invitee: str = "", biz_name: str = "biz") -> RoomState:
    state = a_full_room()
    state.room_id, state.biz_name = room_id, biz_name
    state.invitations = {invitee: {"alice": ""}} if invitee else {}
    return state


async def test_a_saved_room_loads_equal(stores: Stores) -> None:
    store = stores.first
    store.save(room("r1"))
    await store.commit()
    assert store.load("r1") == room("r1")
    assert store.load("r2") is None
    assert (store.count(), store.room_ids()) == (1, ["r1"])


async def test_a_room_changed_and_saved_again_loads_changed(stores: Stores) -> None:
    store = stores.first
    store.save(room("r1"))
    state = store.load("r1")
    assert state is not None
    state.rtoken = "t2"
    store.save(state)
    await store.commit()
    loaded = store.load("r1")
    assert loaded is not None and loaded.rtoken == "t2"


async def test_a_deleted_room_is_gone(stores: Stores) -> None:
    store = stores.first
    store.save(room("r1"))
    store.save(room("r2"))
    await store.commit()
    store.delete("r1")
    store.delete("never-there")
    await store.commit()
    assert store.load("r1") is None
    assert (store.count(), store.room_ids()) == (1, ["r2"])


async def test_waiting_invitations_are_indexed_by_app_and_user(stores: Stores) -> None:
    store = stores.first
    store.save(room("r2", invitee="carol"))
    store.save(room("r1", invitee="carol"))
    store.save(room("r3", invitee="carol", biz_name="other"))
    assert store.invited_to("biz", "carol") == ["r1", "r2"]
    store.save(room("r2"))
    store.delete("r1")
    assert store.invited_to("biz", "carol") == []
    assert store.invited_to("other", "carol") == ["r3"]


async def test_the_next_room_manager_reads_back_what_was_committed(stores: Stores) -> None:
    if stores.next is None:
        pytest.skip("the in-process store dies with its process: nothing to read back")
    store = stores.first
    store.save(room("r1", invitee="carol"))
    store.save(room("r2"))
    store.save(room("r3"))
    await store.commit()
    store.delete("r3")
    await store.commit()
    store.save(room("uncommitted"))

    after = stores.next()
    await after.recover()
    assert sorted(after.room_ids()) == ["r1", "r2"]
    assert after.load("r1") == room("r1", invitee="carol")
    assert after.invited_to("biz", "carol") == ["r1"]


async def test_recovering_an_empty_store_finds_no_room(stores: Stores) -> None:
    await stores.first.recover()
    assert stores.first.count() == 0
