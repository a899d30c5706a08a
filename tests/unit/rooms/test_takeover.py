"""A room manager that takes over the rooms and calls of one that died (two managers on one store). With the
sessions' records taken over too, it serves them at once; without them (the records lost), the sessions its
gateways bring back are seated in their rooms and their calls go on, timers and all; participants and call
sides whose sessions never come back are gone after the session grace, as if their sessions had lapsed."""

from __future__ import annotations

import copy

from parley.rooms.v1 import delivery_pb2, events_pb2

from services.rooms.calls import HANG_UP_COMMAND, CallMedia, CallOrder
from services.rooms.sessions import Attachment, ClientSession, HeldConnection
from tests.unit.rooms.test_room_manager import RULES, CopyingRoomStore, World, kinds, room_with


class HandingOverStore(CopyingRoomStore):
    """Keeps the sessions' records, and hands them to the next room manager on `hand_over`, as the Redis
    store does when their owner's leases ran out."""

    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[str, ClientSession] = {}
        self._handed: list[ClientSession] = []

    def save_session(self, session: ClientSession) -> None:
        self._sessions[session.session_id] = copy.deepcopy(session)

    def delete_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def taken_sessions(self) -> list[ClientSession]:
        handed, self._handed = self._handed, []
        return handed

    def hand_over(self) -> None:
        self._handed = copy.deepcopy(list(self._sessions.values()))


def test_the_sessions_taken_over_are_served_at_once_and_lapse_when_their_gateway_is_gone() -> None:
    store = HandingOverStore()
    world = World(store)
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    after = taken_over(world)
    store.hand_over()
    after.manager.sweep()
    after.manager.send_text(alice, ["bob"], "no heartbeat needed")
    assert kinds(after.pushes(bob)) == ["TextReceived"]
    # Gateway gw1 never reaches this room manager: its sessions are detached at the end of its lease, and
    # end after their grace, reported once, with the time they were opened at.
    after.clock.now += RULES.gateway_lease_s
    after.manager.sweep()
    assert sorted(after.manager.get_room(room_id).participants) == ["alice", "bob"]
    after.clock.now += RULES.session_grace_s
    after.manager.sweep()
    assert after.manager.rooms == 1 and after.manager.get_room(room_id).participants == {}
    closed = [f for f in after.take_outcome().changes if isinstance(f, events_pb2.ParticipantLeft)]
    assert sorted(f.uid for f in closed) == ["alice", "bob"]
    assert sorted(f.session_id for f in after.session_facts) == sorted([alice, bob])
    assert all(f.opened_at.seconds for f in after.session_facts)


def taken_over(world: World) -> World:
    """A second room manager on the first's store, at the same time, knowing none of its sessions."""
    after = World(world.manager.store)
    after.clock.now = world.clock.now
    return after


def bring_back(world: World, *sessions: tuple[str, str]) -> None:
    """Gateway gw1's heartbeat lists these (session id, uid) connections."""
    held = [HeldConnection(sid, f"c_{sid}", "biz", uid) for sid, uid in sessions]
    world.manager.heartbeat("gw1", "gw1:1", held)


def test_sessions_that_come_back_are_seated_in_the_room_taken_over() -> None:
    world = World(CopyingRoomStore())
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    after = taken_over(world)
    bring_back(after, (alice, "alice"), (bob, "bob"))
    after.manager.sweep()
    after.manager.send_text(alice, ["bob"], "still here")
    assert kinds(after.pushes(bob)) == ["TextReceived"]
    assert sorted(after.manager.get_room(room_id).participants) == ["alice", "bob"]
    after.clock.now += RULES.session_grace_s * 2
    after.manager.sweep()
    assert sorted(after.manager.get_room(room_id).participants) == ["alice", "bob"]


def test_participants_whose_sessions_do_not_come_back_leave_after_the_grace() -> None:
    world = World(CopyingRoomStore())
    room_id, _, (alice, _bob) = room_with(world, "alice", "bob")
    after = taken_over(world)
    bring_back(after, (alice, "alice"))
    after.manager.sweep()
    after.take_outcome()
    after.clock.now += RULES.session_grace_s - 1
    after.manager.sweep()
    assert sorted(after.manager.get_room(room_id).participants) == ["alice", "bob"]
    after.clock.now += 1
    after.manager.sweep()
    assert list(after.manager.get_room(room_id).participants) == ["alice"]
    assert kinds(after.take_outcome().changes) == ["ParticipantLeft"]
    assert kinds(after.pushes(alice)) == ["PeerLeft"]


def test_a_call_taken_over_reaches_its_time_limit_on_the_sessions_that_came_back() -> None:
    world = World(CopyingRoomStore())
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, CallOrder("alice", CallMedia.AUDIO, None, False, False, 60))
    world.manager.calls.answer(phone, call.call_id)
    world.clock.now += 30
    after = taken_over(world)
    bring_back(after, (bell, "prod1_bell"), (phone, "alice"))
    after.manager.sweep()
    assert after.manager.calls.is_busy(bell)
    after.clock.now += 30
    after.manager.sweep()
    assert after.pushes(bell) == [
        delivery_pb2.CallCommand(call_id=call.call_id, command=HANG_UP_COMMAND),
        delivery_pb2.CallClosed(call_id=call.call_id, reason="time_limit", by="", keep_time_ms=60_000),
    ]
    ended = [c for c in after.take_outcome().changes if isinstance(c, events_pb2.CallEnded)]
    assert [(c.call_id, c.reason) for c in ended] == [(call.call_id, "time_limit")]
    assert after.manager.rooms == 0


def test_a_ringing_call_taken_over_times_out() -> None:
    world = World(CopyingRoomStore())
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, CallOrder("alice", CallMedia.AUDIO, None, False, False, 0))
    after = taken_over(world)
    bring_back(after, (bell, "prod1_bell"), (phone, "alice"))
    after.clock.now += RULES.call_ring_timeout_s
    after.manager.sweep()
    closed = delivery_pb2.CallClosed(call_id=call.call_id, reason="no_answer", by="", keep_time_ms=0)
    assert after.pushes(bell) == after.pushes(phone) == [closed]


def test_a_call_whose_side_does_not_come_back_ends_after_the_grace_as_a_lost_network() -> None:
    world = World(CopyingRoomStore())
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, CallOrder("alice", CallMedia.AUDIO, None, False, False, 0))
    world.manager.calls.answer(phone, call.call_id)
    after = taken_over(world)
    bring_back(after, (bell, "prod1_bell"))
    after.manager.sweep()
    after.clock.now += RULES.session_grace_s
    after.manager.sweep()
    assert after.pushes(bell) == [
        delivery_pb2.CallClosed(
            call_id=call.call_id,
            reason="network",
            by="user",
            keep_time_ms=round(RULES.session_grace_s * 1000),
        )
    ]
    assert not after.manager.calls.is_busy(bell)
    assert after.manager.rooms == 0


def test_a_session_its_gateway_opens_again_is_seated_at_once() -> None:
    """The gateway reopens a session the room manager does not know on its next request, which may be for
    the room: it is seated then, not at the next sweep."""
    world = World(CopyingRoomStore())
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    after = taken_over(world)
    after.manager.sweep()
    after.manager.open_session(alice, "biz", "alice", Attachment("gw1", "gw1:1", f"c_{alice}"))
    after.manager.open_session(bob, "biz", "bob", Attachment("gw2", "gw2:1", f"c_{bob}"))
    after.manager.send_text(alice, ["bob"], "at once")
    assert kinds(after.pushes(bob)) == ["TextReceived"]
    assert sorted(after.manager.get_room(room_id).participants) == ["alice", "bob"]
