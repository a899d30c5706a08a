"""What is POSTed: the seed's callback bodies (seed 002 section 5.1.2, "配置云端自动录制及录制回调地址" and
"配置房间状态回调地址") built from room and recording facts, and CloudEvents JSON for every other event.

The seed's fields keep the seed's names and meaning; what Parley adds goes in fields of its own beside
them, never in their place. `bizRequestId` is the event's `ce_id`: the same for an event across retries,
restarts and replicas, and the `webhook-id` header of its signature.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import parley
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import events_pb2 as room_events

from services.core.events import Envelope

# Seed 002 room-status callback eventCode: 1 create, 2 join, 3 leave, 4 destroy.
ROOM_CREATED, ROOM_JOINED, ROOM_LEFT, ROOM_DESTROYED = 1, 2, 3, 4
# Seed 002 recording callback eventCode 50 (录制警告, a recording notice) carries Parley's pause and
# resume, which the seed names as callback occasions but gives no code; Parley's own code is beside it.
RECORD_NOTICE = 50
PARLEY_PAUSED, PARLEY_RESUMED = 910001, 910002
RECORD_RESULT = 99
RECORD_SUCCEEDED = 2

ROOM_STATUS_TYPES = {
    message.DESCRIPTOR.full_name
    for message in (
        room_events.RoomCreated,
        room_events.ParticipantJoined,
        room_events.ParticipantLeft,
        room_events.RoomDestroyed,
    )
}
RECORDING_TYPE = recorder_pb2.RecordingEvent.DESCRIPTOR.full_name


@dataclass(frozen=True)
class AppIds:
    """The seed's identity of an app, as the licence service knows it."""

    biz_name: str
    app_id: str
    workspace_id: str


@dataclass(frozen=True)
class SeedCallback:
    """A seed callback ready to queue: for which app, which of its two URLs, which room, and the body."""

    biz_name: str
    kind: str  # "room_status" or "record"
    room_id: str
    body: dict[str, Any]


def _ms(moment: Any) -> int:
    return int(moment.ToMilliseconds())


def _room_status(event: Message, envelope: Envelope, app: AppIds) -> SeedCallback:
    extra: dict[str, Any] = {}
    if isinstance(event, room_events.RoomCreated):
        code, uid, at = ROOM_CREATED, event.creator_uid, event.created_at
    elif isinstance(event, room_events.ParticipantJoined):
        code, uid, at = ROOM_JOINED, event.uid, event.joined_at
    elif isinstance(event, room_events.ParticipantLeft):
        code, uid, at = ROOM_LEFT, event.uid, event.left_at
        extra["exitType"] = event.exit_type
    else:
        assert isinstance(event, room_events.RoomDestroyed)
        # The platform destroys a room (its last participant left, or nobody came): no user did.
        code, uid, at = ROOM_DESTROYED, "", event.destroyed_at
    body = {
        "bizRequestId": envelope.id,
        "uid": uid,
        "bizName": app.biz_name,
        "appId": app.app_id,
        "workspaceId": app.workspace_id,
        "roomId": event.room_id,  # type: ignore[attr-defined]
        "eventCode": code,
        "time": _ms(at),
        **extra,
    }
    return SeedCallback(app.biz_name, "room_status", event.room_id, body)  # type: ignore[attr-defined]


def _record_result(result: recorder_pb2.RecordResult) -> dict[str, Any]:
    if result.status != RECORD_SUCCEEDED:
        return {"status": result.status}
    return {
        "status": result.status,
        "fileType": result.file_type,
        "filePath": result.file_path,
        "recordStartTime": result.record_start_time,
        "mediaType": result.media_type,
    }


def _recording(event: recorder_pb2.RecordingEvent, envelope: Envelope, app: AppIds) -> SeedCallback:
    code = event.event_code
    body: dict[str, Any] = {
        "bizRequestId": envelope.id,
        "bizName": app.biz_name,
        "appId": app.app_id,
        "workspaceId": app.workspace_id,
        "roomId": event.room_id,
        "recordId": event.record_id,
        "eventCode": RECORD_NOTICE if code in (PARLEY_PAUSED, PARLEY_RESUMED) else code,
    }
    if code == RECORD_RESULT:
        body["recordResult"] = _record_result(event.record_result)
    if code in (PARLEY_PAUSED, PARLEY_RESUMED):
        body["parleyEventCode"] = code
    if event.record_third_id:
        body["recordThirdId"] = event.record_third_id
    if event.feed_id:
        body["feedId"] = event.feed_id
    if event.message:
        body["message"] = event.message
    if event.HasField("time"):
        body["time"] = _ms(event.time)
    return SeedCallback(app.biz_name, "record", event.room_id, body)


def decode(payload: bytes, event_type: str) -> Message | None:
    """The event `payload` as its protobuf message, or None when the type is unknown or it does not parse."""
    message_class = _message_class(event_type)
    if message_class is None:
        return None
    event = message_class()
    try:
        event.ParseFromString(payload)
    except DecodeError:
        return None
    return event


def seed_callback(event: Message, envelope: Envelope, app: AppIds) -> SeedCallback | None:
    """The seed callback an event makes, or None for events the seed has no callback for."""
    if envelope.type in ROOM_STATUS_TYPES:
        return _room_status(event, envelope, app)
    if isinstance(event, recorder_pb2.RecordingEvent):
        return _recording(event, envelope, app)
    return None


def biz_name_of(event: Message) -> str:
    """The app an event is about: its `biz_name`, or that of the message it carries (AppChanged.app)."""
    fields = event.DESCRIPTOR.fields_by_name
    if "biz_name" in fields:
        return str(event.biz_name)  # type: ignore[attr-defined]
    for field in event.DESCRIPTOR.fields:
        if field.message_type is not None and "biz_name" in field.message_type.fields_by_name:
            if not field.is_repeated and event.HasField(field.name):
                return str(getattr(event, field.name).biz_name)
    return ""


def cloudevent(event: Message, envelope: Envelope) -> dict[str, Any]:
    """The event in CloudEvents' JSON structured mode; `data` is protobuf's canonical JSON mapping."""
    return {
        "specversion": "1.0",
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "time": envelope.time,
        "subject": envelope.key or "",
        "datacontenttype": "application/json",
        "data": json_format.MessageToDict(event),
    }


def test_event(biz_name: str, event_id: str, kind: str, now: datetime) -> dict[str, Any]:
    """The body of an operator's test delivery: signed and judged like a real one, with no seed code."""
    if kind == "cloudevents":
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": "//parley/webhooks",
            "type": "parley.webhooks.v1.TestEvent",
            "time": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "subject": biz_name,
            "datacontenttype": "application/json",
            "data": {"bizName": biz_name},
        }
    return {"bizRequestId": event_id, "bizName": biz_name, "test": True, "time": int(now.timestamp() * 1000)}


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


@cache
def _message_class(event_type: str) -> type[Message] | None:
    _import_catalogue()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(event_type)
    except KeyError:
        return None
    return message_factory.GetMessageClass(descriptor)


@cache
def _import_catalogue() -> None:
    """Load every generated module under `parley`, so any event type of the catalogue can be decoded."""
    for module in pkgutil.walk_packages(parley.__path__, prefix="parley."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
