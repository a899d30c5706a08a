"""Pushes from the room manager to the sessions of this gateway (SessionDelivery.Deliver, delivery.proto),
turned into the WebSocket events of docs/protocol.md.

The room manager sends each gateway the pushes of the sessions whose connections it holds, in order; a
connection this gateway no longer holds is named in the answer, so that the room manager keeps what it
owed that session for when the session resumes.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog
from parley.rooms.v1 import delivery_pb2, delivery_pb2_grpc, rooms_pb2

from services.gateway.p2p_commands import signal_event_data
from services.gateway.protocol import CloseCode, push
from services.gateway.record_commands import record_event_of
from services.gateway.sessions import SessionTable

log = structlog.get_logger(__name__)

CALL_MEDIA: dict[int, str] = {rooms_pb2.CALL_MEDIA_AUDIO: "audio", rooms_pb2.CALL_MEDIA_VIDEO: "video"}


def feed_data(feed: rooms_pb2.FeedRef) -> dict[str, Any]:
    return {"uid": feed.uid, "feed_id": feed.feed_id, "tag": feed.tag, "media_type": feed.media_type}


def participant_data(participant: rooms_pb2.Participant) -> dict[str, Any]:
    return {
        "uid": participant.uid,
        "user_type": participant.user_type,
        "publish": [
            {"feed_id": f.feed_id, "tag": f.tag, "media_type": f.media_type} for f in participant.feeds
        ],
    }


def event_of(message: delivery_pb2.Push) -> dict[str, Any] | None:
    """The WebSocket push of a room manager's push; None for a kind this gateway does not know."""
    kind = message.WhichOneof("push")
    if kind == "attendance_list":
        attendance = message.attendance_list
        return push(
            "on_room_attendance_list",
            {
                "room_id": attendance.room_id,
                "participants": [participant_data(p) for p in attendance.participants],
            },
        )
    if kind == "new_joiner_in":
        joiner = message.new_joiner_in
        return push("on_new_joiner_in", {"room_id": joiner.room_id, "participant": joiner.uid})
    if kind == "peer_left":
        left = message.peer_left
        return push(
            "on_participant_leave_room",
            {"room_id": left.room_id, "participant": left.uid, "exit_type": left.exit_type},
        )
    if kind == "text_received":
        text = message.text_received
        return push(
            "on_receive_text_msg",
            {"room_id": text.room_id, "uid": text.uid, "text": text.text, "msg_id": text.msg_id},
        )
    if kind == "invite_requested":
        invite = message.invite_requested
        return push(
            "on_invite_request",
            {
                "room_id": invite.room_id,
                "rtoken": invite.rtoken,
                "inviter": invite.inviter,
                "extra": invite.extra,
            },
        )
    if kind == "invite_replied":
        reply = message.invite_replied
        return push(
            "on_invite_reply", {"room_id": reply.room_id, "invitee": reply.invitee, "reply": reply.reply}
        )
    if kind == "new_publish":
        published = message.new_publish
        return push("on_new_publish", {"room_id": published.room_id, "feed": feed_data(published.feed)})
    if kind == "unpublished":
        unpublished = message.unpublished
        return push("on_unpublish", {"room_id": unpublished.room_id, "feed": feed_data(unpublished.feed)})
    if kind == "new_subscribe":
        subscribed = message.new_subscribe
        return push(
            "on_new_subscribe",
            {
                "room_id": subscribed.room_id,
                "subscriber": subscribed.subscriber,
                "feed": feed_data(subscribed.feed),
            },
        )
    if kind == "unsubscribed":
        unsubscribed = message.unsubscribed
        return push(
            "on_unsubscribe",
            {
                "room_id": unsubscribed.room_id,
                "subscriber": unsubscribed.subscriber,
                "feed": feed_data(unsubscribed.feed),
            },
        )
    if kind == "media_closed":
        closed = message.media_closed
        return push(
            "on_media_close",
            {
                "room_id": closed.room_id,
                "code": closed.code,
                "feed_id": closed.feed_id,
                "subscription_id": closed.subscription_id,
            },
        )
    if kind == "network_weak":
        weak = message.network_weak
        # Seed 002 OnNetworkWeak (bpsSend, bpsRecv, sid): its names, and bits per second as strings.
        return push(
            "on_network_weak",
            {
                "room_id": weak.room_id,
                "bpsSend": str(weak.bps_send),
                "bpsRecv": str(weak.bps_recv),
                "sid": weak.sid,
                "feed_id": weak.feed_id,
            },
        )
    if kind == "remote_mute":
        mute = message.remote_mute
        return push(
            "on_remote_mute",
            {
                "room_id": mute.room_id,
                "feed_id": mute.feed_id,
                "uid": mute.uid,
                "audio_muted": mute.audio_muted,
                "video_muted": mute.video_muted,
            },
        )
    if kind == "call_incoming":
        incoming = message.call_incoming
        video = incoming.video if incoming.HasField("video") else None
        return push(
            "on_call_incoming",
            {
                "call_id": incoming.call_id,
                "sn": incoming.sn,
                "media": CALL_MEDIA.get(incoming.media, ""),
                "video": {"width": video.width, "height": video.height, "fps": video.fps}
                if video is not None
                else None,
                "caller_camera_on": incoming.caller_camera_on,
                "callee_camera_on": incoming.callee_camera_on,
                "time_limit_s": incoming.time_limit_s or None,
            },
        )
    if kind == "call_accepted":
        accepted = message.call_accepted
        return push(
            "on_call_answered",
            {"call_id": accepted.call_id, "room_id": accepted.room_id, "rtoken": accepted.rtoken},
        )
    if kind == "call_command":
        command = message.call_command
        return push("on_call_command", {"call_id": command.call_id, "command": command.command})
    if kind == "call_closed":
        closed_call = message.call_closed
        return push(
            "on_call_end",
            {
                "call_id": closed_call.call_id,
                "reason": closed_call.reason,
                "by": closed_call.by,
                "keep_time_ms": closed_call.keep_time_ms,
            },
        )
    if kind == "left_room":
        left_room = message.left_room
        return push("on_leave_room", {"room_id": left_room.room_id, "leave_type": left_room.leave_type})
    if kind == "p2p_signal_received":
        return push("on_p2p_signal", signal_event_data(message.p2p_signal_received))
    if kind in ("remote_record_over", "remote_recording_failed"):
        return record_event_of(message)
    return None


class SessionDeliveryServicer(delivery_pb2_grpc.SessionDeliveryServicer):
    def __init__(self, sessions: SessionTable) -> None:
        self._sessions = sessions

    async def Deliver(
        self, request: delivery_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> delivery_pb2.DeliverResponse:
        missing: dict[str, None] = {}
        for delivery in request.deliveries:
            session = self._sessions.get(delivery.session_id)
            if session is None or session.connection_id != delivery.connection_id or session.closing:
                missing[delivery.connection_id] = None
                continue
            if delivery.push.WhichOneof("push") == "session_taken_over":
                session.close(CloseCode.SESSION_TAKEN_OVER, "session resumed on another connection")
                continue
            event = event_of(delivery.push)
            if event is None:
                # A push of a newer room manager that this gateway cannot put into words.
                log.warning("push_unknown", kind=delivery.push.WhichOneof("push"), session_id=session.id)
                continue
            session.push(event)
        return delivery_pb2.DeliverResponse(missing_connection_ids=list(missing))
