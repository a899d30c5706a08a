"""What the room manager tells client sessions: the messages of delivery.proto's `Push`, which the rules
build directly (the proto is the one definition of each push), and the seed's codes they carry.

The gateway turns each into the WebSocket event of docs/protocol.md (services/gateway/room_pushes.py); the
names follow seed 002's callbacks (OnRoomAttendanceList, OnNewJoinerIn, ...).
"""

from __future__ import annotations

from enum import IntEnum

from parley.rooms.v1 import delivery_pb2


class ExitType(IntEnum):
    """Seed 002 OnParticipantLeaveRoom exitType."""

    NORMAL = 1
    ABNORMAL = 2


class LeaveType(IntEnum):
    """Seed 002 OnLeaveRoom leaveType, for a session taken out of its room without asking."""

    # "被踢出房间": Parley uses it when the same uid joined the room from another session.
    REMOVED = 3


class MediaCloseCode(IntEnum):
    """Seed 002 OnMediaClose codes (section 6.3.4): those the room manager decides, and those a relay
    reports for a stream it closed on its own (services/relay/close_codes.py)."""

    # "取消发布/订阅触发关闭流": the stream's own unpublish or unsubscribe.
    STOPPED = 5001
    # "对端离开房间, 被动关闭流": the publisher left the room.
    PEER_LEFT = 5002
    # "对端取消发布, 被动关闭流": the publisher unpublished.
    PEER_UNPUBLISHED = 5006
    # "退出房间触发关闭流": the stream's owner left the room.
    LEFT_ROOM = 5008
    # Reported by the relay. "启动流失败(信令阶段)": the stream failed to start.
    START_FAILED = 5003
    # "流建立连接超时": ICE and DTLS did not connect in time.
    CONNECT_TIMEOUT = 5004
    # "流建立连接成功, 但房间状态异常".
    ROOM_STATE_INVALID = 5005
    # "媒体链路连接关闭": the connected media link closed or failed.
    LINK_CLOSED = 5007
    # "媒体服务器通过信令通道发出关闭指令": the media server closed it (shutting down, or a flood).
    CLOSED_BY_SERVER = 5009
    # "媒体链路断开连接超时".
    LINK_LOST_TIMEOUT = 5010
    # "媒体链路连接失败": ICE or DTLS failed before ever connecting.
    LINK_FAILED = 5011
    # "发布初始化媒体源失败".
    SOURCE_FAILED = 5012


class InviteReply(IntEnum):
    """Seed 002 OnInviteReply reply."""

    ANSWER = 0
    OFFLINE = 1
    REJECT = 2


Push = (
    delivery_pb2.AttendanceList
    | delivery_pb2.NewJoinerIn
    | delivery_pb2.PeerLeft
    | delivery_pb2.TextReceived
    | delivery_pb2.InviteRequested
    | delivery_pb2.InviteReplied
    | delivery_pb2.NewPublish
    | delivery_pb2.Unpublished
    | delivery_pb2.NewSubscribe
    | delivery_pb2.Unsubscribed
    | delivery_pb2.MediaClosed
    | delivery_pb2.LeftRoom
    | delivery_pb2.CallIncoming
    | delivery_pb2.CallAccepted
    | delivery_pb2.CallCommand
    | delivery_pb2.CallClosed
    | delivery_pb2.SessionTakenOver
    | delivery_pb2.P2PSignalReceived
    | delivery_pb2.NetworkWeak
    | delivery_pb2.RemoteMute
    | delivery_pb2.RemoteRecordOver
    | delivery_pb2.RemoteRecordingFailed
)

# The field of `Push` that carries each kind of push, by the kind's full proto name.
_PUSH_FIELDS = {
    field.message_type.full_name: field.name
    for field in delivery_pb2.Push.DESCRIPTOR.oneofs_by_name["push"].fields
    if field.message_type is not None
}


def push_message(push: Push) -> delivery_pb2.Push:
    message = delivery_pb2.Push()
    getattr(message, _PUSH_FIELDS[push.DESCRIPTOR.full_name]).CopyFrom(push)
    return message
