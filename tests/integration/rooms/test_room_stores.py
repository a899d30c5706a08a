"""One suite for every room store (services/rooms/store.py): the in-process one and Redis (real Redis at
127.0.0.1:6379, a key prefix per test). What a store must do for the room manager: hand out records equal
to what was saved (never the saved object's later changes), forget what was deleted, count and list its
rooms, index waiting invitations, keep device calls and index their lines, keep sessions, share relays,
let one room manager lead, and commit. A durable store is also read back by the next room manager on the
same store after a commit, and only what was committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from parley.rooms.v1 import events_pb2

from services.rooms import room_codec
from services.rooms.calls import Call
from services.rooms.facts import StagedFact, stage
from services.rooms.placement import RelayLoad, RelayNode
from services.rooms.redis_store import LeadershipLost, RedisRoomStore, RoomsFenced
from services.rooms.sessions import Attachment, ClientSession
from services.rooms.state import RoomState
from services.rooms.store import InProcessRoomStore, RoomStore
from tests.clock import FakeClock
from tests.redis_keys import RedisLink, fresh_prefix
from tests.unit.rooms.test_room_codec import a_full_call, a_full_room

# Short leases, so that the tests see them run out.
LEASE_S = 0.3


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

        def store() -> RoomStore:
            return RedisRoomStore(client, prefix=prefix, room_lease_s=LEASE_S, publisher_lease_s=LEASE_S)

        yield Stores(store(), store)


def facts(*room_ids: str) -> list[StagedFact]:
    return stage([events_pb2.RoomCreated(room_id=room_id, biz_name="biz") for room_id in room_ids])


def room_ids_of(staged: list[StagedFact]) -> list[str]:
    return [events_pb2.RoomCreated.FromString(fact.event.payload).room_id for fact in staged]


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
    await asyncio.sleep(LEASE_S + 0.1)
    await after.recover()
    assert sorted(after.room_ids()) == ["r1", "r2"]
    assert after.load("r1") == room("r1", invitee="carol")
    assert after.invited_to("biz", "carol") == ["r1"]


def call(call_id: str, *, sn: str = "sn1", open_id: str = "alice") -> Call:
    made = a_full_call()
    made.call_id, made.sn, made.open_id = call_id, sn, open_id
    return made


async def test_a_saved_call_loads_equal_and_holds_both_lines(stores: Stores) -> None:
    store = stores.first
    store.save_call(call("c1"))
    await store.commit()
    assert store.load_call("c1") == call("c1")
    assert store.load_call("c2") is None
    assert store.call_ids() == ["c1"]
    assert store.call_on_line("biz", "sn1") == store.call_on_line("biz", "alice") == "c1"
    assert store.call_on_line("other", "sn1") is None and store.call_on_line("biz", "bob") is None
    assert store.room_ids() == [] and store.count() == 0


async def test_a_call_changed_and_saved_again_loads_changed(stores: Stores) -> None:
    store = stores.first
    store.save_call(call("c1"))
    ringing = store.load_call("c1")
    assert ringing is not None
    ringing.answered_at = 1_800_000_000.0
    store.save_call(ringing)
    await store.commit()
    assert store.load_call("c1") == ringing


async def test_a_deleted_call_frees_its_lines(stores: Stores) -> None:
    store = stores.first
    store.save_call(call("c1"))
    store.save_call(call("c2", sn="sn2", open_id="bob"))
    await store.commit()
    store.delete_call("c1")
    await store.commit()
    assert store.load_call("c1") is None and store.call_ids() == ["c2"]
    assert store.call_on_line("biz", "sn1") is None and store.call_on_line("biz", "alice") is None
    assert store.call_on_line("biz", "bob") == "c2"


async def test_the_next_room_manager_reads_back_the_calls_committed(stores: Stores) -> None:
    after = durable(stores)()
    store = stores.first
    store.save_call(call("c1"))
    store.save_call(call("c2", sn="sn2", open_id="bob"))
    store.save(room("r1"))
    await store.commit()
    store.delete_call("c2")
    await store.commit()
    store.save_call(call("uncommitted", sn="sn3", open_id="carol"))

    await asyncio.sleep(LEASE_S + 0.1)
    await after.recover()
    assert (after.call_ids(), after.room_ids()) == (["c1"], ["r1"])
    assert after.load_call("c1") == call("c1")
    assert after.call_on_line("biz", "sn1") == "c1" and after.call_on_line("biz", "carol") is None


async def test_a_call_whose_owner_is_gone_is_taken_over_and_the_old_owner_is_fenced(stores: Stores) -> None:
    after = durable(stores)()
    old = stores.first
    old.save_call(call("c1"))
    await old.commit()
    await asyncio.sleep(LEASE_S + 0.1)
    await after.keep()
    assert after.call_ids() == ["c1"] and after.load_call("c1") == call("c1")

    ended_late = old.load_call("c1")
    assert ended_late is not None
    old.delete_call("c1")
    with pytest.raises(RoomsFenced) as fenced:
        await old.commit()
    assert fenced.value.room_ids == ["c1"]
    assert old.call_ids() == [] and old.call_on_line("biz", "sn1") is None
    # The call is still there, held by the room manager that took it over.
    await after.keep()
    assert after.load_call("c1") == call("c1")


def session(session_id: str, room_id: str | None = "r1") -> ClientSession:
    return ClientSession(
        session_id,
        "biz",
        f"u_{session_id}",
        Attachment("gw1", "127.0.0.1:7", f"c_{session_id}"),
        attached_at=1_700_000_000.0,
        room_id=room_id,
        opened_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_the_next_room_manager_takes_over_the_sessions_committed(stores: Stores) -> None:
    after = durable(stores)()
    store = stores.first
    store.save_session(session("s1"))
    store.save_session(session("s2", room_id=None))
    store.save_session(session("s3"))
    await store.commit()
    store.delete_session("s3")
    await store.commit()
    store.save_session(session("uncommitted"))
    assert store.taken_sessions() == []

    await asyncio.sleep(LEASE_S + 0.1)
    await after.recover()
    taken = sorted(after.taken_sessions(), key=lambda s: s.session_id)
    assert taken == [session("s1"), session("s2", room_id=None)]
    assert after.taken_sessions() == []
    assert after.room_ids() == [] and after.call_ids() == []


async def test_relays_heard_by_one_room_manager_are_shared_with_the_others(stores: Stores) -> None:
    other = durable(stores)()
    now = time.time()
    heard = [
        RelayNode("a", "a:1", 100, RelayLoad(publications=3), now),
        RelayNode("b", "b:1", 10, RelayLoad(), now),
    ]
    assert await stores.first.share_relays(heard, lease_s=15) == heard
    assert sorted(await other.share_relays([], lease_s=15), key=lambda r: r.relay_id) == heard
    newer = RelayNode("a", "a:2", 100, RelayLoad(subscriptions=4, draining=True), now + 1)
    await other.share_relays([newer], lease_s=15)
    assert await stores.first.share_relays([], lease_s=15) == [newer, heard[1]]
    # One that reported longer than a lease ago is gone.
    stale = RelayNode("c", "c:1", 10, RelayLoad(), now - 20)
    assert stale not in await other.share_relays([stale], lease_s=15)


async def test_the_in_process_store_shares_relays_with_nobody(stores: Stores) -> None:
    if stores.next is not None:
        pytest.skip("a shared store")
    heard = [RelayNode("a", "a:1", 100, RelayLoad(), time.time())]
    assert await stores.first.share_relays(heard, lease_s=15) == []


async def test_one_room_manager_leads_and_the_next_waits_until_it_is_gone(stores: Stores) -> None:
    standby = durable(stores)()
    leader = stores.first
    await leader.lead()
    leader.save(room("r1"))
    await leader.commit()
    waiting = asyncio.create_task(standby.lead())
    try:
        for _ in range(3):
            await asyncio.sleep(LEASE_S / 3)
            await leader.keep()
        assert not waiting.done()
        # The leader stops renewing (it died, or is cut off): the standby leads once the lease ran out.
        async with asyncio.timeout(30):
            await waiting
    finally:
        waiting.cancel()
    await standby.recover()
    assert standby.room_ids() == ["r1"]
    # The old leader finds out at its next renewal, and lets go of everything.
    with pytest.raises(LeadershipLost):
        await leader.keep()
    assert leader.room_ids() == []


async def test_a_room_manager_cut_off_from_the_store_stands_by_until_it_is_back(stores: Stores) -> None:
    durable(stores)
    link = RedisLink()
    await link.open()
    async with fresh_prefix() as (_, prefix):
        cut_off = redis.Redis.from_url(link.url)
        standby = RedisRoomStore(cut_off, prefix=prefix, room_lease_s=LEASE_S)
        await link.cut()
        waiting = asyncio.create_task(standby.lead())
        try:
            await asyncio.sleep(LEASE_S * 2)
            assert not waiting.done()
            await link.open()
            async with asyncio.timeout(30):
                await waiting
        finally:
            waiting.cancel()
            await cut_off.aclose()
            await link.cut()


async def test_a_leader_that_resigns_hands_over_at_once(stores: Stores) -> None:
    standby = durable(stores)()
    leader = stores.first
    await leader.lead()
    waiting = asyncio.create_task(standby.lead())
    await leader.resign()
    async with asyncio.timeout(30):
        await waiting


async def test_the_in_process_store_leads_alone(stores: Stores) -> None:
    if stores.next is not None:
        pytest.skip("a shared store")
    await stores.first.lead()
    await stores.first.keep()
    await stores.first.resign()


async def test_recovering_an_empty_store_finds_no_room(stores: Stores) -> None:
    await stores.first.recover()
    assert stores.first.count() == 0


async def test_facts_are_staged_in_order_and_removed_once_published(stores: Stores) -> None:
    store = stores.first
    await store.commit(facts("r1", "r2"))
    await store.commit(facts("r3"))
    staged = await store.staged_facts(2)
    assert room_ids_of(staged) == ["r1", "r2"]
    # Reading does not remove.
    assert (await store.staged_facts(10))[:2] == staged
    await store.facts_published(2)
    assert room_ids_of(await store.staged_facts(10)) == ["r3"]
    await store.facts_published(1)
    assert await store.staged_facts(10) == []


async def test_a_staged_fact_keeps_its_identity_and_trace(stores: Stores) -> None:
    store = stores.first
    [fact] = facts("r1")
    fact = StagedFact(fact.event, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    await store.commit([fact])
    assert await store.staged_facts(1) == [fact]


async def test_the_next_room_manager_publishes_the_facts_left_staged(stores: Stores) -> None:
    if stores.next is None:
        pytest.skip("the in-process store dies with its process: nothing to read back")
    store = stores.first
    await store.commit(facts("r1", "r2"))
    staged = await store.staged_facts(10)
    await store.facts_published(1)

    after = stores.next()
    # The publisher's lease is the first store's until it runs out: one publisher at a time.
    assert await after.staged_facts(10) == []
    await asyncio.sleep(LEASE_S + 0.1)
    assert await after.staged_facts(10) == staged[1:]


async def test_a_publisher_whose_lease_ran_out_removes_nothing(stores: Stores) -> None:
    if stores.next is None:
        pytest.skip("one in-process store, one publisher")
    stalled, after = stores.first, stores.next()
    await stalled.commit(facts("r1", "r2"))
    assert len(await stalled.staged_facts(10)) == 2
    await asyncio.sleep(LEASE_S + 0.1)
    assert room_ids_of(await after.staged_facts(10)) == ["r1", "r2"]

    await stalled.facts_published(2)
    assert room_ids_of(await after.staged_facts(10)) == ["r1", "r2"]
    await after.facts_published(1)
    assert room_ids_of(await after.staged_facts(10)) == ["r2"]


# Ownership: one room manager per room, by a lease with an epoch (services/rooms/redis_store.py).


def durable(stores: Stores) -> Callable[[], RoomStore]:
    if stores.next is None:
        pytest.skip("the in-process store has one owner, its process")
    return stores.next


async def test_a_room_held_by_its_owner_is_not_taken_over(stores: Stores) -> None:
    after = durable(stores)()
    owner = stores.first
    owner.save(room("r1"))
    await owner.commit()
    for _ in range(3):
        await asyncio.sleep(LEASE_S / 3)
        await owner.keep()
        await after.keep()
    assert (owner.room_ids(), after.room_ids()) == (["r1"], [])


async def test_a_room_whose_owner_is_gone_is_taken_over_and_the_old_owner_is_fenced(stores: Stores) -> None:
    after = durable(stores)()
    old = stores.first
    old.save(room("r1"))
    old.save(room("r2"))
    await old.commit()
    assert isinstance(old, RedisRoomStore) and isinstance(after, RedisRoomStore)
    first_epoch = old.owns("r1")
    assert first_epoch is not None

    # The old owner stops renewing (cut off, or stalled); its leases run out and the other takes over.
    await asyncio.sleep(LEASE_S + 0.1)
    await after.keep()
    assert sorted(after.room_ids()) == ["r1", "r2"]
    assert (after.owns("r1") or 0) > first_epoch

    # The old owner comes back and writes: nothing of it is written, its facts are not staged, it forgets.
    changed = old.load("r1")
    assert changed is not None
    changed.rtoken = "from the old owner"
    old.save(changed)
    with pytest.raises(RoomsFenced) as fenced:
        await old.commit(facts("r1"))
    assert fenced.value.room_ids == ["r1"]
    assert old.load("r1") is None and "r1" not in old.room_ids()
    assert await after.staged_facts(10) == []
    reread = stores.next()
    await asyncio.sleep(LEASE_S + 0.1)
    await reread.recover()
    kept = reread.load("r1")
    assert kept is not None and kept.rtoken == room("r1").rtoken


async def test_an_owner_that_cannot_renew_lets_its_rooms_go_once_its_leases_may_have_run_out(
    stores: Stores,
) -> None:
    durable(stores)
    assert isinstance(stores.first, RedisRoomStore)
    clock = FakeClock()
    link = RedisLink()
    await link.open()
    async with fresh_prefix() as (_, prefix):
        client = redis.Redis.from_url(link.url)
        store = RedisRoomStore(client, prefix=prefix, room_lease_s=10, clock=clock)
        store.save(room("r1"))
        await store.commit()
        await store.keep()
        clock.advance(9.9)
        assert store.room_ids() == ["r1"]
        await link.cut()
        with pytest.raises(redis.ConnectionError):
            await store.keep()
        clock.advance(0.2)
        assert store.load("r1") is None and store.room_ids() == []
        await client.aclose()


async def test_a_deleted_room_is_taken_over_by_nobody(stores: Stores) -> None:
    after = durable(stores)()
    store = stores.first
    store.save(room("r1"))
    await store.commit()
    store.delete("r1")
    await store.commit()
    await asyncio.sleep(LEASE_S + 0.1)
    await after.keep()
    assert after.room_ids() == []


async def test_facts_left_unstaged_by_a_cut_off_owner_are_not_staged_once_its_rooms_are_taken_over(
    stores: Stores,
) -> None:
    durable(stores)
    link = RedisLink()
    await link.open()
    async with fresh_prefix() as (client, prefix):
        cut_off = redis.Redis.from_url(link.url)
        old = RedisRoomStore(cut_off, prefix=prefix, room_lease_s=LEASE_S)
        after = RedisRoomStore(client, prefix=prefix, room_lease_s=LEASE_S)
        old.save(room("r1"))
        await old.commit()
        await old.keep()
        # Cut off, the owner acts on its room: the commit fails and keeps the room's fact for the next one.
        await link.cut()
        changed = old.load("r1")
        assert changed is not None
        old.save(changed)
        with pytest.raises(redis.ConnectionError):
            await old.commit(facts("r1"))
        # Its lease runs out, another takes the room over, and the owner lets the room go.
        await asyncio.sleep(LEASE_S + 0.1)
        await after.keep()
        assert (after.room_ids(), old.room_ids()) == (["r1"], [])
        # Back on the store, its next commit stages nothing of the room it lost.
        await link.open()
        await old.commit()
        assert await after.staged_facts(10) == []
        await cut_off.aclose()
        await link.cut()


async def committing(store: RoomStore, staged: list[StagedFact] | None = None) -> asyncio.Task[None]:
    """A commit under way, as the service makes them: it has taken what was saved before it."""
    task = asyncio.create_task(store.commit(staged or []))
    await asyncio.sleep(0)
    return task


async def test_commits_made_while_one_is_written_are_all_durable_with_their_facts_in_order(
    stores: Stores,
) -> None:
    store = stores.first
    commits = []
    for index in range(5):
        store.save(room(f"r{index}"))
        commits.append(await committing(store, facts(f"r{index}")))
    store.save(room("r0", invitee="carol"))
    commits.append(await committing(store))
    await asyncio.gather(*commits)
    assert room_ids_of(await store.staged_facts(10)) == ["r0", "r1", "r2", "r3", "r4"]
    if stores.next is None:
        return
    after = stores.next()
    await asyncio.sleep(LEASE_S + 0.1)
    await after.recover()
    assert sorted(after.room_ids()) == ["r0", "r1", "r2", "r3", "r4"]
    assert after.load("r0") == room("r0", invitee="carol")


async def room_r1_taken_over(stores: Stores) -> tuple[RoomStore, RoomStore]:
    """The first store owns room r1 and stops renewing; once its lease ran out another store took r1 over."""
    after = durable(stores)()
    old = stores.first
    old.save(room("r1"))
    await old.commit()
    await asyncio.sleep(LEASE_S + 0.1)
    await after.keep()
    return old, after


async def test_an_old_owner_saving_a_room_unchanged_is_fenced_too(stores: Stores) -> None:
    """A record saved unchanged is not written again, but its lease is checked all the same: an operation
    on a room taken over sends nothing on, even one that changed nothing of it (a text, a push)."""
    old, after = await room_r1_taken_over(stores)
    unchanged = old.load("r1")
    assert unchanged is not None
    old.save(unchanged)
    with pytest.raises(RoomsFenced):
        await old.commit(facts("r1"))
    assert old.room_ids() == [] and await after.staged_facts(10) == []


async def test_a_commit_fenced_among_others_written_together_leaves_theirs_written(stores: Stores) -> None:
    old, after = await room_r1_taken_over(stores)

    # The first commit is written alone; the two made while it is written go together in the next script.
    first = await committing(old, facts("r0"))
    lost = old.load("r1")
    assert lost is not None
    lost.rtoken = "from the old owner"
    old.save(lost)
    fenced = await committing(old, facts("r1"))
    old.save(room("r2"))
    kept = await committing(old, facts("r2"))
    results = await asyncio.gather(first, fenced, kept, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RoomsFenced) and results[1].room_ids == ["r1"]
    assert room_ids_of(await after.staged_facts(10)) == ["r0", "r2"]
    assert old.room_ids() == ["r2"]
    reread = stores.next()
    await asyncio.sleep(LEASE_S + 0.1)
    await reread.recover()
    assert sorted(reread.room_ids()) == ["r1", "r2"]
    kept_room = reread.load("r1")
    assert kept_room is not None and kept_room.rtoken == room("r1").rtoken


async def test_commits_sent_after_a_fenced_one_land_after_what_remains_of_it() -> None:
    """Commits go to Redis without waiting for the replies before them: one sent after a fenced one is
    refused with it, and both are sent again in their order, without the lost room."""
    async with fresh_prefix() as (client, prefix):
        store = RedisRoomStore(client, prefix=prefix, room_lease_s=10)
        store.save(room("r1"))
        store.save(room("r2"))
        await store.commit()
        # Another room manager took r1 over while this one did not look.
        await client.set(f"{prefix}lease:room:r1", "another:9")
        store.save(room("r1", invitee="carol"))
        store.save(room("r2", invitee="carol"))
        fenced = await committing(store, facts("r1", "r2"))
        async with asyncio.timeout(5):
            # The first script is in flight before the next commit is made.
            while not store._sent:
                await asyncio.sleep(0)
        store.save(room("r1", invitee="dave"))
        store.save(room("r2", invitee="dave"))
        after_it = await committing(store, facts("r1", "r3"))
        with pytest.raises(RoomsFenced) as lost:
            await fenced
        assert lost.value.room_ids == ["r1"]
        await after_it
        assert room_ids_of(await store.staged_facts(10)) == ["r2", "r3"]
        assert room_codec.decode(await client.get(f"{prefix}room:r2")) == room("r2", invitee="dave")
        assert store.room_ids() == ["r2"]
