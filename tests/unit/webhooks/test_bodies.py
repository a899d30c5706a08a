"""The seed's callback bodies built from facts (seed 002 section 5.1.2), and CloudEvents for the rest."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from parley.licence.v1 import events_pb2 as licence_events
from parley.licence.v1 import licence_pb2
from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import events_pb2 as room_events

from services.core.events import Envelope
from services.webhooks import bodies

APP = bodies.AppIds("biz1", "app1", "ws1")
AT = Timestamp(seconds=1_700_000_000, nanos=123_000_000)


def envelope(event_type: str, key: str = "room-1") -> Envelope:
    return Envelope(
        id="ce-1",
        type=event_type,
        source="//parley/rooms",
        time="2026-12-06T12:00:00.000Z",
        topic="t",
        key=key,
    )


def test_room_status_bodies_have_exactly_the_seeds_fields_and_codes() -> None:
    cases = [
        (
            room_events.RoomCreated(room_id="room-1", biz_name="biz1", creator_uid="alice", created_at=AT),
            1,
            "alice",
        ),
        (room_events.ParticipantJoined(room_id="room-1", biz_name="biz1", uid="bob", joined_at=AT), 2, "bob"),
        (room_events.RoomDestroyed(room_id="room-1", biz_name="biz1", destroyed_at=AT), 4, ""),
    ]
    for event, code, uid in cases:
        callback = bodies.seed_callback(event, envelope(event.DESCRIPTOR.full_name), APP)
        assert callback is not None and (callback.kind, callback.room_id) == ("room_status", "room-1")
        assert callback.body == {
            "bizRequestId": "ce-1",
            "uid": uid,
            "bizName": "biz1",
            "appId": "app1",
            "workspaceId": "ws1",
            "roomId": "room-1",
            "eventCode": code,
            "time": 1_700_000_000_123,
        }
    left = room_events.ParticipantLeft(room_id="room-1", biz_name="biz1", uid="bob", exit_type=2, left_at=AT)
    callback = bodies.seed_callback(left, envelope(left.DESCRIPTOR.full_name), APP)
    assert callback is not None and callback.body["eventCode"] == 3 and callback.body["exitType"] == 2


def recording(code: int, **fields: object) -> recorder_pb2.RecordingEvent:
    return recorder_pb2.RecordingEvent(
        record_id="rec-1", room_id="room-1", biz_name="biz1", event_code=code, **fields
    )  # type: ignore[arg-type]


def test_the_recording_result_carries_the_seeds_record_result() -> None:
    result = recorder_pb2.RecordResult(
        status=2, file_type=1, file_path="rec-1", record_start_time=1592817186122, media_type=0
    )
    callback = bodies.seed_callback(
        recording(99, record_result=result), envelope(bodies.RECORDING_TYPE, "rec-1"), APP
    )
    assert callback is not None and (callback.kind, callback.room_id) == ("record", "room-1")
    assert callback.body == {
        "bizRequestId": "ce-1",
        "bizName": "biz1",
        "appId": "app1",
        "workspaceId": "ws1",
        "roomId": "room-1",
        "recordId": "rec-1",
        "eventCode": 99,
        "recordResult": {
            "status": 2,
            "fileType": 1,
            "filePath": "rec-1",
            "recordStartTime": 1592817186122,
            "mediaType": 0,
        },
    }
    failed = bodies.seed_callback(
        recording(99, record_result=recorder_pb2.RecordResult(status=3)), envelope(bodies.RECORDING_TYPE), APP
    )
    assert failed is not None and failed.body["recordResult"] == {"status": 3}


def test_parleys_own_codes_and_fields_go_beside_the_seeds() -> None:
    paused = bodies.seed_callback(
        recording(910001, record_third_id="batch-1"), envelope(bodies.RECORDING_TYPE), APP
    )
    assert paused is not None
    assert (paused.body["eventCode"], paused.body["parleyEventCode"], paused.body["recordThirdId"]) == (
        50,
        910001,
        "batch-1",
    )
    started = bodies.seed_callback(recording(10), envelope(bodies.RECORDING_TYPE), APP)
    assert started is not None and "recordResult" not in started.body and started.body["eventCode"] == 10


def test_other_events_have_no_seed_callback_and_go_out_as_cloudevents() -> None:
    ended = room_events.CallEnded(call_id="call-1", biz_name="biz1", reason="hang_up", keep_time_ms=5000)
    env = envelope(ended.DESCRIPTOR.full_name, "call-1")
    assert bodies.seed_callback(ended, env, APP) is None
    decoded = bodies.decode(ended.SerializeToString(), "parley.rooms.v1.CallEnded")
    assert decoded == ended and bodies.biz_name_of(decoded) == "biz1"
    assert bodies.cloudevent(ended, env) == {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "//parley/rooms",
        "type": "parley.rooms.v1.CallEnded",
        "time": "2026-12-06T12:00:00.000Z",
        "subject": "call-1",
        "datacontenttype": "application/json",
        "data": {"callId": "call-1", "bizName": "biz1", "reason": "hang_up", "keepTimeMs": "5000"},
    }


def test_the_app_of_an_event_that_carries_it_nested() -> None:
    changed = licence_events.AppChanged(app=licence_pb2.App(biz_name="biz9"))
    assert bodies.biz_name_of(changed) == "biz9"
    assert bodies.decode(b"\xff\xff", "parley.rooms.v1.RoomCreated") is None
    assert bodies.decode(b"", "parley.nothing.v1.Unknown") is None
    assert (
        bodies.test_event("biz1", "t-1", "record", datetime(2026, 1, 1, tzinfo=UTC))["bizRequestId"] == "t-1"
    )
