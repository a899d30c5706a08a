"""Every push the room manager makes reaches the gateway in its field of `Push` and the client as an event,
and every change goes to its topic under its key. (The events' JSON, to the byte:
tests/unit/gateway/test_room_push_wire.py.)"""

from __future__ import annotations

import typing

from parley.rooms.v1 import delivery_pb2, events_pb2

from services.core.topics import Topic
from services.gateway.room_pushes import EVENTS, event_of
from services.rooms.changes import TOPICS, Change, change_key, change_topic
from services.rooms.pushes import Push, push_message

PUSH_FIELDS = delivery_pb2.Push.DESCRIPTOR.oneofs_by_name["push"].fields


def test_each_kind_of_push_goes_in_its_field_and_becomes_an_event() -> None:
    assert {kind.DESCRIPTOR.full_name for kind in typing.get_args(Push)} == {
        field.message_type.full_name for field in PUSH_FIELDS
    }
    for kind in typing.get_args(Push):
        message = push_message(kind())
        [(field, _)] = message.ListFields()
        assert field.message_type is kind.DESCRIPTOR
        event = event_of(message)
        if kind is delivery_pb2.SessionTakenOver:
            # Not an event: the gateway closes the connection (4002).
            assert event is None
        else:
            assert event is not None and event["event"] == EVENTS[field.name].name
    assert set(EVENTS) == {field.name for field in PUSH_FIELDS} - {"session_taken_over"}
    assert sorted(event.name for event in EVENTS.values()) == [
        "on_call_answered",
        "on_call_command",
        "on_call_end",
        "on_call_incoming",
        "on_invite_reply",
        "on_invite_request",
        "on_leave_room",
        "on_media_close",
        "on_network_weak",
        "on_new_joiner_in",
        "on_new_publish",
        "on_new_subscribe",
        "on_p2p_signal",
        "on_participant_leave_room",
        "on_receive_text_msg",
        "on_remote_mute",
        "on_remote_record_over",
        "on_remote_recording_failed",
        "on_room_attendance_list",
        "on_unpublish",
        "on_unsubscribe",
    ]


def test_each_change_goes_to_its_topic_keyed_by_room_or_by_call() -> None:
    samples: list[Change] = [
        events_pb2.RoomCreated(room_id="r1"),
        events_pb2.RoomDestroyed(room_id="r1"),
        events_pb2.ParticipantJoined(room_id="r1"),
        events_pb2.ParticipantLeft(room_id="r1"),
        events_pb2.FeedPublished(room_id="r1"),
        events_pb2.FeedUnpublished(room_id="r1"),
        events_pb2.SubscriptionStarted(room_id="r1"),
        events_pb2.SubscriptionEnded(room_id="r1"),
        events_pb2.CallStarted(call_id="c1"),
        events_pb2.CallAnswered(call_id="c1", room_id="r2"),
        events_pb2.CallEnded(call_id="c1", room_id="r2"),
    ]
    assert {type(sample) for sample in samples} == set(typing.get_args(Change)) == set(TOPICS)
    assert [change_topic(sample) for sample in samples] == [Topic.ROOM] * 4 + [Topic.FEED] * 4 + [
        Topic.CALL
    ] * 3
    # Room facts are keyed by room, call facts by call (a ringing call has no room).
    assert [change_key(sample) for sample in samples] == ["r1"] * 8 + ["c1"] * 3
