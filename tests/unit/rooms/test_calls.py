"""Device-to-phone calls on the room manager's fake clock: ringing, answering into a room, the ways a call
ends and what the device hears of each (seed 000: the hang-up command only for a hang-up, never for a lost
network)."""

from __future__ import annotations

import pytest
from parley.rooms.v1 import delivery_pb2, rooms_pb2

from services.core.errors import ParleyError
from services.rooms.calls import HANG_UP_COMMAND, CallMedia, CallOrder
from tests.unit.rooms.test_room_manager import RULES, World, kinds

ORDER = CallOrder(
    open_id="alice",
    media=CallMedia.VIDEO,
    video=rooms_pb2.VideoFormat(width=640, height=480, fps=15),
    caller_camera_on=True,
    callee_camera_on=False,
    time_limit_s=0,
)


def reason(error: pytest.ExceptionInfo[ParleyError]) -> str:
    return error.value.kind.reason


def test_a_call_rings_every_session_of_the_user_and_the_first_answer_takes_it(world: World) -> None:
    bell = world.connect("prod1_bell")
    phone, tablet = world.connect("alice"), world.connect("alice", gateway="gw2")
    call = world.manager.calls.start(bell, ORDER)
    incoming = delivery_pb2.CallIncoming(
        call_id=call.call_id,
        sn="prod1_bell",
        media=2,
        video=ORDER.video,
        caller_camera_on=True,
        callee_camera_on=False,
        time_limit_s=0,
        open_id="alice",
        caller="device",
    )
    assert world.pushes(phone) == world.pushes(tablet) == [incoming]

    room = world.manager.calls.answer(tablet, call.call_id)
    accepted = delivery_pb2.CallAccepted(call_id=call.call_id, room_id=room.room_id, rtoken=room.rtoken)
    assert world.pushes(bell) == world.pushes(tablet) == [accepted]
    assert world.pushes(phone) == [
        delivery_pb2.CallClosed(call_id=call.call_id, reason="answered_elsewhere", by="user", keep_time_ms=0)
    ]
    assert kinds(world.take_outcome().changes) == ["CallStarted", "RoomCreated", "CallAnswered"]
    with pytest.raises(ParleyError) as again:
        world.manager.calls.answer(phone, call.call_id)
    assert reason(again) == "CALL_NOT_FOUND"


def test_a_hang_up_sends_the_device_the_command_first_and_closes_the_room(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    room = world.manager.calls.answer(phone, call.call_id)
    world.manager.join_room(bell, room.room_id, room.rtoken)
    world.manager.join_room(phone, room.room_id, room.rtoken)
    world.pushes(bell), world.pushes(phone), world.take_outcome()

    world.clock.now += 42
    world.manager.calls.hang_up(phone, call.call_id)
    closed = delivery_pb2.CallClosed(call_id=call.call_id, reason="hang_up", by="user", keep_time_ms=42_000)
    assert world.pushes(bell)[:2] == [
        delivery_pb2.CallCommand(call_id=call.call_id, command=HANG_UP_COMMAND),
        closed,
    ]
    assert world.pushes(phone)[0] == closed
    changes = world.take_outcome().changes
    assert kinds(changes)[-1] == "CallEnded" and "RoomDestroyed" in kinds(changes)
    assert world.manager.sessions.get(bell).room_id is None
    assert world.manager.calls.is_busy(bell) is False


def test_no_answer_within_the_ring_timeout_ends_the_call_without_the_command(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    world.pushes(bell), world.pushes(phone)
    world.clock.now += RULES.call_ring_timeout_s
    world.manager.sweep()
    closed = delivery_pb2.CallClosed(call_id=call.call_id, reason="no_answer", by="", keep_time_ms=0)
    assert world.pushes(bell) == world.pushes(phone) == [closed]


def test_the_time_limit_counts_from_the_answer(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, CallOrder("alice", CallMedia.AUDIO, None, False, False, 60))
    world.clock.now += 10
    world.manager.calls.answer(phone, call.call_id)
    world.pushes(bell), world.pushes(phone)
    world.clock.now += 59
    world.manager.sweep()
    assert world.pushes(bell) == []
    world.clock.now += 1
    world.manager.sweep()
    assert world.pushes(bell) == [
        delivery_pb2.CallCommand(call_id=call.call_id, command=HANG_UP_COMMAND),
        delivery_pb2.CallClosed(call_id=call.call_id, reason="time_limit", by="", keep_time_ms=60_000),
    ]


def test_a_lost_network_ends_the_call_after_the_grace_without_the_command(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    world.manager.calls.answer(phone, call.call_id)
    world.pushes(bell), world.pushes(phone)
    world.manager.detach_session(phone, f"c_{phone}")
    world.clock.now += RULES.session_grace_s - 1
    world.manager.sweep()
    assert world.manager.calls.is_busy(bell)
    world.clock.now += 1
    world.manager.sweep()
    assert world.pushes(bell) == [
        delivery_pb2.CallClosed(call_id=call.call_id, reason="network", by="user", keep_time_ms=15_000)
    ]


def test_a_disconnect_is_a_hang_up(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    world.manager.calls.answer(phone, call.call_id)
    world.pushes(bell)
    world.manager.close_session(phone, f"c_{phone}")
    assert kinds(world.pushes(bell)) == ["CallCommand", "CallClosed"]


def test_busy_offline_and_strangers(world: World) -> None:
    bell, other_bell = world.connect("prod1_bell"), world.connect("prod1_other")
    phone = world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    with pytest.raises(ParleyError) as device_busy:
        world.manager.calls.check_free(bell)
    with pytest.raises(ParleyError) as user_busy:
        world.manager.calls.start(other_bell, ORDER)
    assert reason(device_busy) == reason(user_busy) == "IV_ERR_AVT_REQ_CHN_BUSY"
    assert world.manager.calls.is_busy(phone)
    with pytest.raises(ParleyError) as offline:
        world.manager.calls.start(other_bell, CallOrder("bob", CallMedia.AUDIO, None, False, False, 0))
    assert reason(offline) == "CALLEE_OFFLINE"
    stranger = world.connect("mallory")
    for act in (world.manager.calls.answer, world.manager.calls.reject, world.manager.calls.hang_up):
        with pytest.raises(ParleyError) as refused:
            act(stranger, call.call_id)
        assert reason(refused) == "CALL_NOT_FOUND"


def test_the_calls_room_outlives_the_empty_room_grace_until_the_call_ends(world: World) -> None:
    bell, phone = world.connect("prod1_bell"), world.connect("alice")
    call = world.manager.calls.start(bell, ORDER)
    room = world.manager.calls.answer(phone, call.call_id)
    world.clock.now += RULES.empty_room_grace_s + 1
    world.manager.sweep()
    world.manager.join_room(bell, room.room_id, room.rtoken)
    world.manager.calls.hang_up(bell, call.call_id)
    assert world.manager.rooms == 0


# Seed 003 initByCaller: the user calls the device.
USER_ORDER = CallOrder(
    open_id="",
    media=CallMedia.AUDIO,
    video=None,
    caller_camera_on=False,
    callee_camera_on=False,
    time_limit_s=0,
    sn="prod1_bell",
)


def test_a_user_calls_a_device_which_rings_answers_and_hears_the_hang_up_command(world: World) -> None:
    phone, bell = world.connect("alice"), world.connect("prod1_bell")
    call = world.manager.calls.start(phone, USER_ORDER)
    (incoming,) = world.pushes(bell)
    assert (incoming.call_id, incoming.sn, incoming.open_id, incoming.caller) == (
        call.call_id,
        "prod1_bell",
        "alice",
        "user",
    )
    assert world.pushes(phone) == []
    # The caller cannot answer its own call; the device can.
    with pytest.raises(ParleyError) as refused:
        world.manager.calls.answer(phone, call.call_id)
    assert reason(refused) == "CALL_NOT_FOUND"
    room = world.manager.calls.answer(bell, call.call_id)
    accepted = delivery_pb2.CallAccepted(call_id=call.call_id, room_id=room.room_id, rtoken=room.rtoken)
    assert world.pushes(phone) == world.pushes(bell) == [accepted]

    world.clock.now += 5
    world.manager.calls.hang_up(phone, call.call_id)
    closed = delivery_pb2.CallClosed(call_id=call.call_id, reason="hang_up", by="user", keep_time_ms=5_000)
    assert world.pushes(bell) == [
        delivery_pb2.CallCommand(call_id=call.call_id, command=HANG_UP_COMMAND),
        closed,
    ]
    assert world.pushes(phone) == [closed]


def test_a_device_rejects_a_users_call_and_a_ringing_call_hung_up_by_the_user_sends_no_command(
    world: World,
) -> None:
    phone, bell = world.connect("alice"), world.connect("prod1_bell")
    call = world.manager.calls.start(phone, USER_ORDER)
    world.pushes(bell)
    world.manager.calls.reject(bell, call.call_id)
    rejected = delivery_pb2.CallClosed(call_id=call.call_id, reason="rejected", by="device", keep_time_ms=0)
    assert world.pushes(phone) == world.pushes(bell) == [rejected]

    call = world.manager.calls.start(phone, USER_ORDER)
    world.pushes(bell)
    world.manager.calls.hang_up(phone, call.call_id)
    # No device has taken the call yet: the ringing device hears the end, without the command.
    assert [push.reason for push in world.pushes(bell)] == ["hang_up"]
