"""What the room manager tells client sessions, one record per push (delivery.proto's `Push`).

The gateway turns each into the WebSocket event of docs/protocol.md; the names follow seed 002's
callbacks (OnRoomAttendanceList, OnNewJoinerIn, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from parley.recorder.v1 import recorder_pb2

from services.rooms.p2p import P2PSignal


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


@dataclass(frozen=True)
class FeedInfo:
    uid: str
    feed_id: str
    tag: str
    media_type: int


@dataclass(frozen=True)
class ParticipantInfo:
    uid: str
    feeds: tuple[FeedInfo, ...]
    # Seed 002 userType: 0 an ordinary user (101 is mPaaS's playback robot, which Parley has not).
    user_type: int = 0


@dataclass(frozen=True)
class AttendanceList:
    room_id: str
    participants: tuple[ParticipantInfo, ...]


@dataclass(frozen=True)
class NewJoinerIn:
    room_id: str
    uid: str


@dataclass(frozen=True)
class PeerLeft:
    room_id: str
    uid: str
    exit_type: ExitType


@dataclass(frozen=True)
class TextReceived:
    room_id: str
    uid: str
    text: str
    msg_id: str


@dataclass(frozen=True)
class InviteRequested:
    room_id: str
    rtoken: str
    inviter: str
    extra: str


@dataclass(frozen=True)
class InviteReplied:
    room_id: str
    invitee: str
    reply: InviteReply


@dataclass(frozen=True)
class NewPublish:
    room_id: str
    feed: FeedInfo


@dataclass(frozen=True)
class Unpublished:
    room_id: str
    feed: FeedInfo


@dataclass(frozen=True)
class NewSubscribe:
    room_id: str
    subscriber: str
    feed: FeedInfo


@dataclass(frozen=True)
class Unsubscribed:
    room_id: str
    subscriber: str
    feed: FeedInfo


@dataclass(frozen=True)
class MediaClosed:
    room_id: str
    code: MediaCloseCode
    feed_id: str
    subscription_id: str


@dataclass(frozen=True)
class NetworkWeak:
    """Seed 002 OnNetworkWeak (bpsSend, bpsRecv, sid): sid is a feed id (a publication) or a subscription
    id."""

    room_id: str
    sid: str
    feed_id: str
    bps_send: int
    bps_recv: int


@dataclass(frozen=True)
class RemoteMute:
    """Parley's: a publisher paused or resumed a kind of its feed (seed 002 muteLocalAudio/Video)."""

    room_id: str
    feed_id: str
    uid: str
    audio_muted: bool
    video_muted: bool


@dataclass(frozen=True)
class LeftRoom:
    room_id: str
    leave_type: LeaveType


@dataclass(frozen=True)
class VideoFormat:
    """Seed 000 voip_video_info_s: the video a calling device sends and wants to receive."""

    width: int
    height: int
    fps: int


@dataclass(frozen=True)
class CallIncoming:
    call_id: str
    sn: str
    media: int
    video: VideoFormat | None
    caller_camera_on: bool
    callee_camera_on: bool
    time_limit_s: int


@dataclass(frozen=True)
class CallAccepted:
    call_id: str
    room_id: str
    rtoken: str


@dataclass(frozen=True)
class CallCommand:
    """Seed 000 onRecvCommand signalling to the device."""

    call_id: str
    command: str


@dataclass(frozen=True)
class CallClosed:
    call_id: str
    reason: str
    by: str
    keep_time_ms: int


@dataclass(frozen=True)
class SessionTakenOver:
    """The session was resumed on another connection: the old one is to be closed."""


@dataclass(frozen=True)
class P2PSignalReceived:
    """To one participant of a P2P room: the other's signal (offer, answer, candidate, bye)."""

    room_id: str
    sender: str
    signal: P2PSignal


@dataclass(frozen=True)
class RemoteRecordOver:
    """Seed 002 OnRemoteRecordOver: a recording of the room ended (services/rooms/recording_events.py)."""

    room_id: str
    record_id: str
    # Seed 002 recordResult status: 2 recorded, 3 failed.
    status: int
    files: tuple[recorder_pb2.RecordFile, ...]


@dataclass(frozen=True)
class RemoteRecordingFailed:
    """Seed 002 OnRemoteRecordingFailed (recordId, feedId, code, msg)."""

    room_id: str
    record_id: str
    feed_id: str
    code: int
    msg: str


Push = (
    AttendanceList
    | NewJoinerIn
    | PeerLeft
    | TextReceived
    | InviteRequested
    | InviteReplied
    | NewPublish
    | Unpublished
    | NewSubscribe
    | Unsubscribed
    | MediaClosed
    | LeftRoom
    | CallIncoming
    | CallAccepted
    | CallCommand
    | CallClosed
    | SessionTakenOver
    | P2PSignalReceived
    | NetworkWeak
    | RemoteMute
    | RemoteRecordOver
    | RemoteRecordingFailed
)
