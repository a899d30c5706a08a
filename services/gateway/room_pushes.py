"""Pushes from the room manager to the sessions of this gateway (SessionDelivery.Deliver, delivery.proto),
turned into the WebSocket events of docs/protocol.md.

The room manager sends each gateway the pushes of the sessions whose connections it holds, in order; a
connection this gateway no longer holds is named in the answer, so that the room manager keeps what it
owed that session for when the session resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message
from parley.rooms.v1 import delivery_pb2, delivery_pb2_grpc, rooms_pb2

from services.gateway.p2p_commands import signal_event_data
from services.gateway.protocol import CloseCode, encode, push
from services.gateway.record_commands import record_over_data
from services.gateway.sessions import Session, SessionTable

log = structlog.get_logger(__name__)

CALL_MEDIA: dict[int, str] = {rooms_pb2.CALL_MEDIA_AUDIO: "audio", rooms_pb2.CALL_MEDIA_VIDEO: "video"}


def fields(message: Message) -> dict[str, Any]:
    """A message's fields by their proto names, in the proto's order; messages within it likewise."""
    data: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None:
            value = [fields(item) for item in value] if field.is_repeated else fields(value)
        elif field.is_repeated:
            value = list(value)
        data[field.name] = value
    return data


def renamed(**names: str) -> Callable[[Message], dict[str, Any]]:
    """`fields`, with some of them under the names the protocol gives them."""
    return lambda message: {names.get(name, name): value for name, value in fields(message).items()}


def attendance_data(attendance: delivery_pb2.AttendanceList) -> dict[str, Any]:
    return {
        "room_id": attendance.room_id,
        "participants": [
            {
                "uid": participant.uid,
                "user_type": participant.user_type,
                "publish": [
                    {"feed_id": f.feed_id, "tag": f.tag, "media_type": f.media_type}
                    for f in participant.feeds
                ],
            }
            for participant in attendance.participants
        ],
    }


def network_weak_data(weak: delivery_pb2.NetworkWeak) -> dict[str, Any]:
    # Seed 002 OnNetworkWeak (bpsSend, bpsRecv, sid): its names, and bits per second as strings.
    return {
        "room_id": weak.room_id,
        "bpsSend": str(weak.bps_send),
        "bpsRecv": str(weak.bps_recv),
        "sid": weak.sid,
        "feed_id": weak.feed_id,
    }


def call_incoming_data(incoming: delivery_pb2.CallIncoming) -> dict[str, Any]:
    return {
        "call_id": incoming.call_id,
        "sn": incoming.sn,
        "open_id": incoming.open_id,
        # "device" (seed 000: a device calls its user) or "user" (seed 003 initByCaller).
        "caller": incoming.caller,
        "media": CALL_MEDIA.get(incoming.media, ""),
        "video": fields(incoming.video) if incoming.HasField("video") else None,
        "caller_camera_on": incoming.caller_camera_on,
        "callee_camera_on": incoming.callee_camera_on,
        "time_limit_s": incoming.time_limit_s or None,
    }


@dataclass(frozen=True)
class Event:
    name: str
    # The event's data from the push's message; its fields as they are unless the protocol says otherwise.
    data: Callable[[Any], dict[str, Any]] = fields


# Each push of delivery.proto (by its field in `Push`) and the event of docs/protocol.md it becomes.
EVENTS: dict[str, Event] = {
    "attendance_list": Event("on_room_attendance_list", attendance_data),
    "new_joiner_in": Event("on_new_joiner_in", renamed(uid="participant")),
    "peer_left": Event("on_participant_leave_room", renamed(uid="participant")),
    "text_received": Event("on_receive_text_msg"),
    "invite_requested": Event("on_invite_request"),
    "invite_replied": Event("on_invite_reply"),
    "new_publish": Event("on_new_publish"),
    "unpublished": Event("on_unpublish"),
    "new_subscribe": Event("on_new_subscribe"),
    "unsubscribed": Event("on_unsubscribe"),
    "media_closed": Event("on_media_close"),
    "network_weak": Event("on_network_weak", network_weak_data),
    "remote_mute": Event("on_remote_mute"),
    "call_incoming": Event("on_call_incoming", call_incoming_data),
    "call_accepted": Event("on_call_answered"),
    "call_command": Event("on_call_command"),
    "call_closed": Event("on_call_end"),
    "left_room": Event("on_leave_room"),
    "p2p_signal_received": Event("on_p2p_signal", signal_event_data),
    "remote_record_over": Event("on_remote_record_over", record_over_data),
    "remote_recording_failed": Event("on_remote_recording_failed"),
}


def event_of(message: delivery_pb2.Push) -> dict[str, Any] | None:
    """The WebSocket push of a room manager's push; None for a kind this gateway does not know."""
    kind = message.WhichOneof("push")
    if kind is None or kind not in EVENTS:
        return None
    event = EVENTS[kind]
    return push(event.name, event.data(getattr(message, kind)))


class SessionDeliveryServicer(delivery_pb2_grpc.SessionDeliveryServicer):
    def __init__(self, sessions: SessionTable) -> None:
        self._sessions = sessions

    async def Deliver(
        self, request: delivery_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> delivery_pb2.DeliverResponse:
        missing: dict[str, None] = {}
        # Each session's pushes of this request, in order, written together (one socket write for those a
        # room's joins in a row made, when the session's connection can take them at once).
        outgoing: dict[Session, list[str]] = {}
        for delivery in request.deliveries:
            # A push to everyone in a room comes once with its recipients, and is put into words once.
            recipients: Iterable[delivery_pb2.Recipient | delivery_pb2.Delivery] = delivery.recipients or (
                delivery,
            )
            kind = delivery.push.WhichOneof("push")
            event = event_of(delivery.push) if kind != "session_taken_over" else None
            text = encode(event) if event is not None else None
            for recipient in recipients:
                session = self._sessions.get(recipient.session_id)
                if session is None or session.connection_id != recipient.connection_id or session.closing:
                    missing[recipient.connection_id] = None
                elif kind == "session_taken_over":
                    # What came before the takeover goes out before the close.
                    session.push(outgoing.pop(session, ()))
                    session.close(CloseCode.SESSION_TAKEN_OVER, "session resumed on another connection")
                elif text is None:
                    # A push of a newer room manager that this gateway cannot put into words.
                    log.warning("push_unknown", kind=kind, session_id=session.id)
                else:
                    outgoing.setdefault(session, []).append(text)
        for session, texts in outgoing.items():
            session.push(texts)
        return delivery_pb2.DeliverResponse(missing_connection_ids=list(missing))
