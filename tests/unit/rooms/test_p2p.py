"""P2P rooms in the room manager (fake clock, no transport): the engine a room keeps, the two-participant
limit, no relay media, and signals passed to the other participant only."""

from __future__ import annotations

import pytest
from parley.rooms.v1 import delivery_pb2, events_pb2, rooms_pb2

from services.core.errors import ParleyError
from services.rooms.p2p import Engine, P2PSignalType
from tests.unit.rooms.test_room_manager import World

OFFER = rooms_pb2.P2PSignal(type=P2PSignalType.OFFER, sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")


def p2p_room(world: World, *uids: str) -> tuple[str, str, list[str]]:
    """A P2P room created by the first uid and joined by the others; pushes and outcome so far taken."""
    sessions = [world.connect(uid) for uid in uids]
    room = world.manager.create_room(
        biz_name="",
        creator_uid="",
        session_id=sessions[0],
        record=rooms_pb2.RecordOptions(),
        engine=Engine.P2P,
    )
    for session in sessions[1:]:
        world.manager.join_room(session, room.room_id, room.rtoken, Engine.P2P)
    for session in sessions:
        world.pushes(session)
    world.take_outcome()
    return room.room_id, room.rtoken, sessions


def refusal(call: object, *args: object, **kwargs: object) -> tuple[int, str]:
    assert callable(call)
    with pytest.raises(ParleyError) as refused:
        call(*args, **kwargs)
    return refused.value.code, refused.value.kind.reason


def test_a_room_keeps_its_engine_and_says_so_in_its_facts(world: World) -> None:
    room_id, _, (alice, bob) = p2p_room(world, "alice", "bob")
    assert world.manager.get_room(room_id).engine is Engine.P2P
    world.manager.leave_room(bob)
    world.manager.leave_room(alice)
    world.clock.now += 61
    world.manager.sweep()
    facts = world.take_outcome().changes
    assert {type(fact).__name__: fact.engine for fact in facts if hasattr(fact, "engine")} == {
        "ParticipantLeft": Engine.P2P,
        "RoomDestroyed": Engine.P2P,
    }
    # Created and joined (taken by p2p_room) carry it too.
    other = world.connect("carol")
    world.manager.create_room(
        biz_name="", creator_uid="", session_id=other, record=rooms_pb2.RecordOptions(), engine=Engine.P2P
    )
    created, joined = world.take_outcome().changes
    assert isinstance(created, events_pb2.RoomCreated) and isinstance(joined, events_pb2.ParticipantJoined)
    assert (created.engine, joined.engine) == (Engine.P2P, Engine.P2P)


def test_engines_not_offered_are_refused_at_creation(world: World) -> None:
    alice = world.connect("alice")
    create = world.manager.create_room
    assert refusal(
        create,
        biz_name="",
        creator_uid="",
        session_id=alice,
        record=rooms_pb2.RecordOptions(),
        engine=Engine.ALIYUN,
    ) == (-202, "ENGINE_UNSUPPORTED")
    recorded = rooms_pb2.RecordOptions(default_record=True)
    assert refusal(
        create, biz_name="", creator_uid="", session_id=alice, record=recorded, engine=Engine.P2P
    ) == (-202, "P2P_NOT_RECORDED")
    # Nothing was made: the session can still create a room.
    assert world.manager.rooms == 0
    assert world.take_outcome().changes == []


def test_a_join_must_ask_for_the_rooms_engine_or_none(world: World) -> None:
    room_id, rtoken, _ = p2p_room(world, "alice")
    bob = world.connect("bob")
    assert refusal(world.manager.join_room, bob, room_id, rtoken, Engine.SFU) == (-403, "ENGINE_MISMATCH")
    assert refusal(world.manager.join_room, bob, room_id, rtoken, Engine.ALIYUN) == (
        -202,
        "ENGINE_UNSUPPORTED",
    )
    assert world.manager.join_room(bob, room_id, rtoken, None).engine is Engine.P2P

    sfu = world.manager.create_room(
        biz_name="", creator_uid="", session_id=world.connect("carol"), record=rooms_pb2.RecordOptions()
    )
    dave = world.connect("dave")
    assert refusal(world.manager.join_room, dave, sfu.room_id, sfu.rtoken, Engine.P2P) == (
        -403,
        "ENGINE_MISMATCH",
    )


def test_a_p2p_room_holds_two_but_a_uid_may_take_its_own_place(world: World) -> None:
    room_id, rtoken, (_, bob) = p2p_room(world, "alice", "bob")
    carol = world.connect("carol")
    code, reason = refusal(world.manager.join_room, carol, room_id, rtoken)
    assert (code, reason) == (-403, "ROOM_FULL")
    # Bob from a second device replaces his first session: still two.
    bob_again = world.connect("bob")
    world.manager.join_room(bob_again, room_id, rtoken, Engine.P2P)
    assert set(world.manager.get_room(room_id).participants) == {"alice", "bob"}
    assert isinstance(world.pushes(bob)[-1], delivery_pb2.LeftRoom)


def test_relay_media_is_refused_in_a_p2p_room_and_never_places_it(world: World) -> None:
    room_id, _, (alice, bob) = p2p_room(world, "alice", "bob")
    assert refusal(world.manager.start_publish, alice, 1, "cam") == (5104, "PUBLISH_IN_P2P_ROOM")
    assert refusal(world.manager.start_publish, alice, 1, "", data_channel=True) == (
        5104,
        "PUBLISH_IN_P2P_ROOM",
    )
    assert refusal(world.manager.start_subscribe, bob, "f1", audio=True, video=True) == (
        -1087,
        "SUBSCRIBE_IN_P2P_ROOM",
    )
    assert world.manager.get_room(room_id).relay_address == ""
    assert world.take_outcome().relay_orders == []


def test_a_data_channel_in_an_sfu_publish_is_minus_203(world: World) -> None:
    alice = world.connect("alice")
    world.manager.create_room(biz_name="", creator_uid="", session_id=alice, record=rooms_pb2.RecordOptions())
    assert refusal(world.manager.start_publish, alice, 1, "", data_channel=True) == (
        -203,
        "DATA_CHANNEL_NOT_P2P",
    )
    # Without one the same publish starts.
    assert world.manager.start_publish(alice, 1, "").feed_id


def test_signals_go_to_the_other_participant_in_the_order_sent(world: World) -> None:
    room_id, _, (alice, bob) = p2p_room(world, "alice", "bob")
    candidates = [
        rooms_pb2.P2PSignal(
            type=P2PSignalType.CANDIDATE,
            candidate=f"candidate:{n} 1 udp 1 127.0.0.1 {5000 + n} typ host",
            sdp_mid="0",
        )
        for n in range(3)
    ]
    for signal in [OFFER, *candidates]:
        world.manager.send_p2p_signal(alice, "bob", signal)
    received = world.pushes(bob)
    assert received == [
        delivery_pb2.P2PSignalReceived(room_id=room_id, sender="alice", signal=s)
        for s in [OFFER, *candidates]
    ]
    assert world.pushes(alice) == []
    # Signals are not facts.
    assert world.take_outcome().changes == []


def test_signals_outside_a_p2p_pair_are_refused(world: World) -> None:
    _, _, (alice, bob) = p2p_room(world, "alice", "bob")
    send = world.manager.send_p2p_signal
    assert refusal(send, alice, "alice", OFFER) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    assert refusal(send, alice, "carol", OFFER) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    loner = world.connect("loner")
    assert refusal(send, loner, "bob", OFFER) == (-91010, "NOT_IN_ROOM")
    sfu_alice, sfu_bob = world.connect("sfu_alice"), world.connect("sfu_bob")
    sfu = world.manager.create_room(
        biz_name="", creator_uid="", session_id=sfu_alice, record=rooms_pb2.RecordOptions()
    )
    world.manager.join_room(sfu_bob, sfu.room_id, sfu.rtoken)
    assert refusal(send, sfu_alice, "sfu_bob", OFFER) == (-91040, "NOT_P2P_ROOM")
    assert world.pushes(bob) == []
