"""Errors of the room manager, with the codes of seed 002 section 6.3.4 where the seed names the situation.

The seed's codes are per command (a join refused by the server is -403, an invitation -501/-503, ...), so
one situation has a kind per command; the reason says which check failed. Parley's own codes are -910xx
(docs/protocol.md, "Codes"), for what the seed has no code for.

Each kind below says where its code comes from; docs/protocol.md ("Codes") lists them all. SESSION_UNKNOWN
(-91016), which the gateway recognises too, is in `services.core.shared_errors`.
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

# Parley's own: situations seed 002 has no code for.
NOT_IN_ROOM = ErrorKind(-91010, "NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "this session is in no room")
ALREADY_IN_ROOM = ErrorKind(
    -91011,
    "ALREADY_IN_ROOM",
    _Status.FAILED_PRECONDITION,
    "this session is in a room already; leave it first",
)
FEED_NOT_PUBLISHED = ErrorKind(
    -91012, "FEED_NOT_PUBLISHED", _Status.NOT_FOUND, "this session publishes no such feed"
)
NOT_SUBSCRIBED = ErrorKind(
    -91013, "NOT_SUBSCRIBED", _Status.NOT_FOUND, "this session does not subscribe to it"
)
MUTE_FEED_UNKNOWN = ErrorKind(-91014, "MUTE_FEED_UNKNOWN", _Status.NOT_FOUND, "no such feed in the room")
MUTE_KIND_ABSENT = ErrorKind(
    -91015, "MUTE_KIND_ABSENT", _Status.FAILED_PRECONDITION, "the stream carries no track of that kind"
)

# 002 6.3.4 -403 "加入房间失败: 服务器返回错误" (a join the server refused).
ROOM_NOT_FOUND = ErrorKind(-403, "ROOM_NOT_FOUND", _Status.NOT_FOUND, "no such room")
RTOKEN_MISMATCH = ErrorKind(
    -403, "RTOKEN_MISMATCH", _Status.PERMISSION_DENIED, "the rtoken is not the room's"
)
ROOM_FULL = ErrorKind(-403, "ROOM_FULL", _Status.RESOURCE_EXHAUSTED, "the room is full")

# 002 6.3.4 -501 "房间状态非法", -503 "参数错误" (invite); -601 "房间状态错误" (reply to an invitation).
INVITE_NOT_IN_ROOM = ErrorKind(
    -501, "INVITE_NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "join or create a room before inviting"
)
INVITEE_IS_INVITER = ErrorKind(
    -503, "INVITEE_IS_INVITER", _Status.INVALID_ARGUMENT, "you cannot invite yourself"
)
INVITATION_NOT_FOUND = ErrorKind(
    -601, "INVITATION_NOT_FOUND", _Status.FAILED_PRECONDITION, "no invitation to that room is waiting"
)

# 002 6.3.2 SendTextMsg 10291 "服务端返回错误" (listed as -10291 in 6.3.4).
TEXT_NOT_IN_ROOM = ErrorKind(
    -10291, "TEXT_NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "join a room before sending text"
)
PEER_NOT_IN_ROOM = ErrorKind(
    -10291, "PEER_NOT_IN_ROOM", _Status.INVALID_ARGUMENT, "a peer is not another participant of the room"
)

# 002 6.3.4 5104 "发布启动失败: 房间状态非法"; -1073 "超出发布限额"; -1071 "服务器返回错误".
PUBLISH_NOT_IN_ROOM = ErrorKind(
    5104, "PUBLISH_NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "join a room before publishing"
)
PUBLISH_LIMIT = ErrorKind(-1073, "PUBLISH_LIMIT", _Status.RESOURCE_EXHAUSTED, "too many feeds published")
PUBLISH_ABANDONED = ErrorKind(
    -1071, "PUBLISH_ABANDONED", _Status.FAILED_PRECONDITION, "the publish ended before it completed"
)

# 002 6.3.4 -1087 "房间状态不正确"; -1081 "服务器返回错误"; -1083 "超出订阅限额";
# -1086 "subscribe_video_id / subscribe_audio_id 缺失" (nothing to receive).
SUBSCRIBE_NOT_IN_ROOM = ErrorKind(
    -1087, "SUBSCRIBE_NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "join a room before subscribing"
)
FEED_UNKNOWN = ErrorKind(-1081, "FEED_UNKNOWN", _Status.NOT_FOUND, "no such feed in the room")
SUBSCRIPTION_EXISTS = ErrorKind(
    -1081, "SUBSCRIPTION_EXISTS", _Status.ALREADY_EXISTS, "already subscribed to this feed"
)
SUBSCRIBE_ABANDONED = ErrorKind(
    -1081, "SUBSCRIBE_ABANDONED", _Status.FAILED_PRECONDITION, "the subscribe ended before it completed"
)
SUBSCRIBE_LIMIT = ErrorKind(-1083, "SUBSCRIBE_LIMIT", _Status.RESOURCE_EXHAUSTED, "too many subscriptions")
SUBSCRIBE_NOTHING = ErrorKind(
    -1086, "SUBSCRIBE_NOTHING", _Status.INVALID_ARGUMENT, "subscribe to audio, video or both"
)

# Device calls. Seed 000 answers a busy line with IV_ERR_AVT_REQ_CHN_BUSY ("占线") but gives it no number,
# so Parley's own code carries it, with the seed's name as its reason. The rest are Parley's own as well.
CALL_BUSY = ErrorKind(
    -91020,
    "IV_ERR_AVT_REQ_CHN_BUSY",
    _Status.FAILED_PRECONDITION,
    "the device or the user is in a call already",
)
CALLEE_OFFLINE = ErrorKind(
    -91021, "CALLEE_OFFLINE", _Status.FAILED_PRECONDITION, "the user has no connected session"
)
CALL_NOT_FOUND = ErrorKind(
    -91022, "CALL_NOT_FOUND", _Status.NOT_FOUND, "no such call is waiting for this session"
)
# Seed 000 doWxCloudVoipCall -14 "手机微信拨打硬件设备模式, voipToken 错误": a phone's call to a device whose
# credential is not valid. Parley has no voipToken; the device's activation and registration stand for it,
# so a user's call to a device the licence service answers -2 (DEVICE_ID_INVALID) for is -14.
CALLED_DEVICE_INVALID = ErrorKind(
    -14,
    "CALLED_DEVICE_INVALID",
    _Status.FAILED_PRECONDITION,
    "the device called is not activated and registered",
)
# -91023 CALL_WRONG_PARTY is the gateway's (services/gateway/errors.py): only it knows who a session is.
CALL_MEDIA_NOT_LICENSED = ErrorKind(
    -91024,
    "CALL_MEDIA_NOT_LICENSED",
    _Status.PERMISSION_DENIED,
    "the device is licensed for audio calls only",
)

# 002 6.3.4 -302 "创建房间失败: 服务器返回错误": the room server refuses the room. Seed 002 InitRoomConfig
# recordStrongDepend: "若为 true, 同时录制启动未成功时, 音视频通话也无法连接成功" (the room fails when its
# recording cannot start); the room server's refusal is -302, while -304 is the client's media timeout.
CREATE_ROOM_RECORD_FAILED = ErrorKind(
    -302,
    "CREATE_ROOM_RECORD_FAILED",
    _Status.UNAVAILABLE,
    "the room's recording could not start and the room depends on it (recordStrongDepend)",
)
