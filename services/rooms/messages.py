"""The room manager's records as protobuf messages: rooms for the gRPC answers, pushes for the gateways,
changes for the topics."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, events_pb2, rooms_pb2

from services.core.errors import INVALID_ARGUMENT
from services.core.media.kinds import KIND_NAMES, MEDIA_KIND
from services.core.timestamps import timestamp
from services.core.topics import Topic
from services.rooms import changes, pushes
from services.rooms.p2p import P2PSignal, P2PSignalType
from services.rooms.rooms import Room


def record_message(record: changes.RecordOptions) -> rooms_pb2.RecordOptions:
    return rooms_pb2.RecordOptions(
        default_record=record.default_record,
        record_strong_depend=record.record_strong_depend,
        record_param_json=record.record_param_json,
    )


def record_options(message: rooms_pb2.RecordOptions) -> changes.RecordOptions:
    return changes.RecordOptions(
        default_record=message.default_record,
        record_strong_depend=message.record_strong_depend,
        record_param_json=message.record_param_json,
    )


def tracks(messages: Iterable[media_pb2.Track]) -> tuple[changes.Track, ...]:
    return tuple(
        changes.Track(kind=KIND_NAMES[track.kind], codec=track.codec)
        for track in messages
        if track.kind in KIND_NAMES
    )


def track_messages(records: Iterable[changes.Track]) -> list[media_pb2.Track]:
    return [media_pb2.Track(kind=MEDIA_KIND[track.kind], codec=track.codec) for track in records]


def feed_message(feed: pushes.FeedInfo) -> rooms_pb2.FeedRef:
    return rooms_pb2.FeedRef(uid=feed.uid, feed_id=feed.feed_id, tag=feed.tag, media_type=feed.media_type)


def participant_message(participant: pushes.ParticipantInfo) -> rooms_pb2.Participant:
    return rooms_pb2.Participant(
        uid=participant.uid,
        user_type=participant.user_type,
        feeds=[feed_message(feed) for feed in participant.feeds],
    )


def room_message(room: Room) -> rooms_pb2.Room:
    return rooms_pb2.Room(
        room_id=room.room_id,
        rtoken=room.rtoken,
        biz_name=room.biz_name,
        creator_uid=room.creator_uid,
        created_at=timestamp(room.created_at),
        participants=[participant_message(p) for p in room.attendance(without="")],
        record=record_message(room.record),
        engine=room.engine,
        relay_address=room.relay_address,
    )


def p2p_signal(message: rooms_pb2.P2PSignal) -> P2PSignal:
    """The signal of a request; its type must be one of P2PSignalType's (INVALID_ARGUMENT otherwise)."""
    if message.type not in tuple(P2PSignalType):
        raise INVALID_ARGUMENT("signal.type is 1 (offer), 2 (answer), 3 (candidate) or 4 (bye)")
    return P2PSignal(
        type=P2PSignalType(message.type),
        sdp=message.sdp,
        candidate=message.candidate,
        sdp_mid=message.sdp_mid,
        sdp_mline_index=message.sdp_mline_index if message.HasField("sdp_mline_index") else None,
    )


def p2p_signal_message(signal: P2PSignal) -> rooms_pb2.P2PSignal:
    return rooms_pb2.P2PSignal(
        type=rooms_pb2.P2PSignalType.ValueType(signal.type),
        sdp=signal.sdp,
        candidate=signal.candidate,
        sdp_mid=signal.sdp_mid,
        sdp_mline_index=signal.sdp_mline_index,
    )


def push_message(push: pushes.Push) -> delivery_pb2.Push:
    match push:
        case pushes.AttendanceList():
            return delivery_pb2.Push(
                attendance_list=delivery_pb2.AttendanceList(
                    room_id=push.room_id, participants=[participant_message(p) for p in push.participants]
                )
            )
        case pushes.NewJoinerIn():
            return delivery_pb2.Push(
                new_joiner_in=delivery_pb2.NewJoinerIn(room_id=push.room_id, uid=push.uid)
            )
        case pushes.PeerLeft():
            return delivery_pb2.Push(
                peer_left=delivery_pb2.PeerLeft(room_id=push.room_id, uid=push.uid, exit_type=push.exit_type)
            )
        case pushes.TextReceived():
            return delivery_pb2.Push(
                text_received=delivery_pb2.TextReceived(
                    room_id=push.room_id, uid=push.uid, text=push.text, msg_id=push.msg_id
                )
            )
        case pushes.InviteRequested():
            return delivery_pb2.Push(
                invite_requested=delivery_pb2.InviteRequested(
                    room_id=push.room_id, rtoken=push.rtoken, inviter=push.inviter, extra=push.extra
                )
            )
        case pushes.InviteReplied():
            return delivery_pb2.Push(
                invite_replied=delivery_pb2.InviteReplied(
                    room_id=push.room_id, invitee=push.invitee, reply=push.reply
                )
            )
        case pushes.NewPublish():
            return delivery_pb2.Push(
                new_publish=delivery_pb2.NewPublish(room_id=push.room_id, feed=feed_message(push.feed))
            )
        case pushes.Unpublished():
            return delivery_pb2.Push(
                unpublished=delivery_pb2.Unpublished(room_id=push.room_id, feed=feed_message(push.feed))
            )
        case pushes.NewSubscribe():
            return delivery_pb2.Push(
                new_subscribe=delivery_pb2.NewSubscribe(
                    room_id=push.room_id, subscriber=push.subscriber, feed=feed_message(push.feed)
                )
            )
        case pushes.Unsubscribed():
            return delivery_pb2.Push(
                unsubscribed=delivery_pb2.Unsubscribed(
                    room_id=push.room_id, subscriber=push.subscriber, feed=feed_message(push.feed)
                )
            )
        case pushes.MediaClosed():
            return delivery_pb2.Push(
                media_closed=delivery_pb2.MediaClosed(
                    room_id=push.room_id,
                    code=push.code,
                    feed_id=push.feed_id,
                    subscription_id=push.subscription_id,
                )
            )
        case pushes.LeftRoom():
            return delivery_pb2.Push(
                left_room=delivery_pb2.LeftRoom(room_id=push.room_id, leave_type=push.leave_type)
            )
        case pushes.CallIncoming():
            return delivery_pb2.Push(
                call_incoming=delivery_pb2.CallIncoming(
                    call_id=push.call_id,
                    sn=push.sn,
                    media=rooms_pb2.CallMedia.ValueType(push.media),
                    video=video_message(push.video),
                    caller_camera_on=push.caller_camera_on,
                    callee_camera_on=push.callee_camera_on,
                    time_limit_s=push.time_limit_s,
                )
            )
        case pushes.CallAccepted():
            return delivery_pb2.Push(
                call_accepted=delivery_pb2.CallAccepted(
                    call_id=push.call_id, room_id=push.room_id, rtoken=push.rtoken
                )
            )
        case pushes.CallCommand():
            return delivery_pb2.Push(
                call_command=delivery_pb2.CallCommand(call_id=push.call_id, command=push.command)
            )
        case pushes.CallClosed():
            return delivery_pb2.Push(
                call_closed=delivery_pb2.CallClosed(
                    call_id=push.call_id, reason=push.reason, by=push.by, keep_time_ms=push.keep_time_ms
                )
            )
        case pushes.SessionTakenOver():
            return delivery_pb2.Push(session_taken_over=delivery_pb2.SessionTakenOver())
        case pushes.P2PSignalReceived():
            return delivery_pb2.Push(
                p2p_signal_received=delivery_pb2.P2PSignalReceived(
                    room_id=push.room_id, sender=push.sender, signal=p2p_signal_message(push.signal)
                )
            )
        case pushes.NetworkWeak():
            return delivery_pb2.Push(
                network_weak=delivery_pb2.NetworkWeak(
                    room_id=push.room_id,
                    sid=push.sid,
                    feed_id=push.feed_id,
                    bps_send=push.bps_send,
                    bps_recv=push.bps_recv,
                )
            )
        case pushes.RemoteMute():
            return delivery_pb2.Push(
                remote_mute=delivery_pb2.RemoteMute(
                    room_id=push.room_id,
                    feed_id=push.feed_id,
                    uid=push.uid,
                    audio_muted=push.audio_muted,
                    video_muted=push.video_muted,
                )
            )
        case pushes.RemoteRecordOver():
            return delivery_pb2.Push(
                remote_record_over=delivery_pb2.RemoteRecordOver(
                    room_id=push.room_id, record_id=push.record_id, files=push.files, status=push.status
                )
            )
        case pushes.RemoteRecordingFailed():
            return delivery_pb2.Push(
                remote_recording_failed=delivery_pb2.RemoteRecordingFailed(
                    room_id=push.room_id,
                    record_id=push.record_id,
                    feed_id=push.feed_id,
                    code=push.code,
                    msg=push.msg,
                )
            )


def video_message(video: pushes.VideoFormat | None) -> rooms_pb2.VideoFormat | None:
    if video is None:
        return None
    return rooms_pb2.VideoFormat(width=video.width, height=video.height, fps=video.fps)


def change_key(change: changes.Change) -> str:
    """Room facts are keyed by room, call facts by call: a ringing call has no room yet."""
    if isinstance(change, changes.CallStarted | changes.CallAnswered | changes.CallEnded):
        return change.call_id
    return change.room_id


def change_event(change: changes.Change) -> tuple[Topic, Message]:
    """The topic and the event of a change (keyed by `change_key`)."""
    match change:
        case changes.RoomCreated():
            return Topic.ROOM, events_pb2.RoomCreated(
                room_id=change.room_id,
                biz_name=change.biz_name,
                creator_uid=change.creator_uid,
                created_at=timestamp(change.created_at),
                record=record_message(change.record),
                engine=change.engine,
            )
        case changes.RoomDestroyed():
            return Topic.ROOM, events_pb2.RoomDestroyed(
                room_id=change.room_id,
                biz_name=change.biz_name,
                destroyed_at=timestamp(change.destroyed_at),
                engine=change.engine,
            )
        case changes.ParticipantJoined():
            return Topic.ROOM, events_pb2.ParticipantJoined(
                room_id=change.room_id,
                biz_name=change.biz_name,
                uid=change.uid,
                session_id=change.session_id,
                joined_at=timestamp(change.joined_at),
                engine=change.engine,
            )
        case changes.ParticipantLeft():
            return Topic.ROOM, events_pb2.ParticipantLeft(
                room_id=change.room_id,
                biz_name=change.biz_name,
                uid=change.uid,
                session_id=change.session_id,
                exit_type=change.exit_type,
                joined_at=timestamp(change.joined_at),
                left_at=timestamp(change.left_at),
                engine=change.engine,
            )
        case changes.FeedPublished():
            return Topic.FEED, events_pb2.FeedPublished(
                room_id=change.room_id,
                biz_name=change.biz_name,
                feed_id=change.feed_id,
                uid=change.uid,
                tag=change.tag,
                media_type=change.media_type,
                tracks=track_messages(change.tracks),
                published_at=timestamp(change.published_at),
            )
        case changes.FeedUnpublished():
            return Topic.FEED, events_pb2.FeedUnpublished(
                room_id=change.room_id,
                biz_name=change.biz_name,
                feed_id=change.feed_id,
                uid=change.uid,
                code=change.code,
                published_at=timestamp(change.published_at),
                unpublished_at=timestamp(change.unpublished_at),
            )
        case changes.SubscriptionStarted():
            return Topic.FEED, events_pb2.SubscriptionStarted(
                room_id=change.room_id,
                biz_name=change.biz_name,
                feed_id=change.feed_id,
                subscription_id=change.subscription_id,
                uid=change.uid,
                publisher_uid=change.publisher_uid,
                tracks=track_messages(change.tracks),
                started_at=timestamp(change.started_at),
            )
        case changes.SubscriptionEnded():
            return Topic.FEED, events_pb2.SubscriptionEnded(
                room_id=change.room_id,
                biz_name=change.biz_name,
                feed_id=change.feed_id,
                subscription_id=change.subscription_id,
                uid=change.uid,
                publisher_uid=change.publisher_uid,
                code=change.code,
                started_at=timestamp(change.started_at),
                ended_at=timestamp(change.ended_at),
            )
        case changes.CallStarted():
            return Topic.CALL, events_pb2.CallStarted(
                call_id=change.call_id,
                biz_name=change.biz_name,
                sn=change.sn,
                open_id=change.open_id,
                media=rooms_pb2.CallMedia.ValueType(change.media),
                started_at=timestamp(change.started_at),
            )
        case changes.CallAnswered():
            return Topic.CALL, events_pb2.CallAnswered(
                call_id=change.call_id,
                biz_name=change.biz_name,
                sn=change.sn,
                open_id=change.open_id,
                room_id=change.room_id,
                answered_at=timestamp(change.answered_at),
            )
        case changes.CallEnded():
            return Topic.CALL, events_pb2.CallEnded(
                call_id=change.call_id,
                biz_name=change.biz_name,
                sn=change.sn,
                open_id=change.open_id,
                room_id=change.room_id,
                reason=change.reason,
                by=change.by,
                keep_time_ms=change.keep_time_ms,
                ended_at=timestamp(change.ended_at),
            )
