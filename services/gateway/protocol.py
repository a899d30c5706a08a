"""The messages of protocol v1 (docs/protocol.md): requests parsed and validated, responses and pushes
built. Nothing here touches a socket or a service.

A request is `{"cmd", "req_id", "params"}`; a response `{"req_id", "code", "msg", "data"}` (errors add
`reason`); a push `{"event", "data"}`. Unknown keys are ignored, so clients written for a later version,
or ported from the seed's Web API with its extra fields, still work.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from services.core.errors import ErrorKind, ParleyError
from services.gateway.errors import INVALID_PARAMS, MALFORMED_MESSAGE

# Fields are exact types: a number where a string belongs is an error, not something to guess about.
_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True)

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# 002 section 6.3.2: uid is English letters, digits and underscores, at most 128 characters.
Uid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,128}$")]


class Request(BaseModel):
    model_config = _STRICT

    cmd: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    req_id: Name
    params: dict[str, Any] = Field(default_factory=dict)


# A session id given back by `connect`, to resume that session (session keeping).
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class UserConnect(BaseModel):
    """`connect` of a user, signed by its app (002 section 4): sub_biz is the app's appId."""

    model_config = _STRICT

    uid: Uid
    biz_name: Name
    sub_biz: Name
    # The seed's Connect (002 6.3.2 config_param) has no workspaceId: the app of biz_name has one, and a
    # client that sends none is given it. One that sends it is checked against it, as in v1.
    workspace_id: Name | None = None
    sign: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    session_id: SessionId | None = None


class DeviceConnect(BaseModel):
    """`connect` of a device, with the secret its registration gave it."""

    model_config = _STRICT

    # 000 initWxCloudVoipV2: sn is at most 128 bytes; the licence service checks the rest.
    sn: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    device_secret: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    session_id: SessionId | None = None


class RecordExt(BaseModel):
    """`create_room`'s `ext`: seed 002 InitRoomConfig's recording options, under the seed's own names."""

    model_config = _STRICT

    default_record: bool = Field(default=False, alias="defaultRecord")
    # The seed's default: a call does not start when its recording cannot.
    record_strong_depend: bool = Field(default=True, alias="recordStrongDepend")
    # Appendix 7's recordParam object, kept as given for the recorder.
    record_param: dict[str, Any] | None = Field(default=None, alias="recordParam")
    # The app's batch id for this recording, echoed in its events and callbacks (the seed spells it so).
    record_third_id: Annotated[str, StringConstraints(max_length=255)] = Field(
        default="", alias="record_third_id"
    )
    # The recording's folder in the recorder's storage; the recorder checks it (-91035).
    file_path: Annotated[str, StringConstraints(max_length=200)] = Field(default="", alias="filePath")

    @model_validator(mode="after")
    def _file_path_needs_default_record(self) -> RecordExt:
        # Seed 002 InitRoomConfig: "若指定 filePath, 则需指定 defaultRecord 为 true".
        if self.file_path and not self.default_record:
            raise ValueError("filePath needs defaultRecord true")
        return self


# Seed 002 config_param `engine`: 0 ALIPAY (Parley's relay, default), 1 ALIYUN, 2 P2P. The room manager
# refuses 1, which Parley does not offer.
Engine = Annotated[int, Field(ge=0, le=2)]


class CreateRoom(BaseModel):
    model_config = _STRICT

    ext: RecordExt = Field(default_factory=RecordExt)
    engine: Engine = 0


class JoinRoom(BaseModel):
    model_config = _STRICT

    room_id: Name
    rtoken: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # The engine the joiner expects (seed 002: set on join as on create); None: whatever the room has.
    engine: Engine | None = None


# A room's participants are a handful; a list longer than a room can hold is a mistake, not a request.
Uids = Annotated[list[Uid], Field(max_length=64)]


class SendText(BaseModel):
    model_config = _STRICT

    # Empty: everyone else in the room.
    peers: Uids = Field(default_factory=list)
    text: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class Invite(BaseModel):
    model_config = _STRICT

    uids: Annotated[list[Uid], Field(min_length=1, max_length=64)]
    extra: Annotated[str, StringConstraints(max_length=4096)] = ""


class ReplyInvite(BaseModel):
    model_config = _STRICT

    room_id: Name
    # 0 answer, 1 offline, 2 reject (seed 002 OnInviteReply).
    reply: Annotated[int, Field(ge=0, le=2)]
    # Reply to this inviter only; without it, to everyone who invited this user to the room.
    inviter: Uid | None = None


# An SDP offer fills most of a frame at most; the frame limit bounds it first.
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=65536)]


class Publish(BaseModel):
    model_config = _STRICT

    # 1 audio and video, 2 audio only, 3 video only (seed 002 Publish media_type).
    media_type: Annotated[int, Field(ge=1, le=3)]
    tag: Annotated[str, StringConstraints(max_length=128)] = ""
    sdp: Sdp


class Subscribe(BaseModel):
    model_config = _STRICT

    feed_id: Name
    audio: bool = True
    video: bool = True
    sdp: Sdp


class FeedCommand(BaseModel):
    """`unpublish` and `unsubscribe`: the feed they stop."""

    model_config = _STRICT

    feed_id: Name


class CallVideo(BaseModel):
    """Seed 000 voip_video_info_s: the video the device sends and wants to receive."""

    model_config = _STRICT

    width: Annotated[int, Field(ge=16, le=7680)]
    height: Annotated[int, Field(ge=16, le=4320)]
    fps: Annotated[int, Field(ge=1, le=120)]


class CallOptions(BaseModel):
    """What every `call` says, whoever calls."""

    model_config = _STRICT

    media: Literal["audio", "video"]
    video: CallVideo | None = None
    caller_camera_on: bool = False
    callee_camera_on: bool = False
    # Seed 003 initByCaller timeLimit: the call ends this long after it is answered.
    time_limit_s: Annotated[int, Field(ge=1, le=86400)] | None = None


class StartCall(CallOptions):
    """`call`: seed 000 doWxCloudVoipCallV2, for a device session."""

    # Not checked here: a malformed open_id is the licence service's -7, as the seed answers it.
    open_id: Annotated[str, StringConstraints(max_length=256)]
    # The device's own model by default; another one is -17, as the seed answers it.
    model_id: Name | None = None


class CallDevice(CallOptions):
    """`call` from a user: seed 003 initByCaller, a phone calls a device it is authorised for."""

    sn: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class CallRef(BaseModel):
    """`answer_call`, `reject_call`, `hang_up`: the call they act on."""

    model_config = _STRICT

    call_id: Name


class BadRequest(Exception):
    """A frame that could not be read as a request; `req_id` is kept when the frame had a usable one."""

    def __init__(self, error: ParleyError, req_id: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.req_id = req_id


def parse_request(text: str) -> Request:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: a frame of 64 KiB can nest deeper than the decoder recurses.
        raise BadRequest(MALFORMED_MESSAGE("not valid JSON"), None) from None
    if not isinstance(raw, dict):
        raise BadRequest(MALFORMED_MESSAGE("a request must be a JSON object"), None)
    req_id = raw.get("req_id")
    usable_req_id = req_id if isinstance(req_id, str) and 0 < len(req_id) <= 128 else None
    try:
        return Request.model_validate(raw)
    except ValidationError as error:
        raise BadRequest(MALFORMED_MESSAGE(_first_problem(error)), usable_req_id) from None


ParamsT = TypeVar("ParamsT", bound=BaseModel)


def parse_params(
    model: type[ParamsT], params: dict[str, Any], invalid: ErrorKind = INVALID_PARAMS
) -> ParamsT:
    """`invalid` is the kind of a refusal: the seed's parameter-error code where the command has one."""
    try:
        return model.model_validate(params)
    except ValidationError as error:
        raise invalid(_first_problem(error)) from None


def _first_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def ok(req_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"req_id": req_id, "code": 0, "msg": "ok", "data": data}


def failure(req_id: str | None, error: ParleyError, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "req_id": req_id,
        "code": error.code,
        "msg": error.message,
        "reason": error.kind.reason,
        "data": data or {},
    }


def push(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "data": data}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class CloseCode(IntEnum):
    """Why the gateway closes a connection (RFC 6455 section 7.4; 4000-4999 are the application's)."""

    NORMAL = 1000  # after `disconnect`
    UNSUPPORTED_DATA = 1003  # a binary frame: protocol v1 is text (JSON) only
    POLICY_VIOLATION = 1008  # more frames than the rate limit allows
    MESSAGE_TOO_BIG = 1009  # a frame larger than the frame limit
    TRY_AGAIN_LATER = 1013  # the client reads too slowly: its outbound queue is full
    SIGNATURE_EXPIRED = 4001  # the `sign` the user connected with has reached its expireTime
    SESSION_TAKEN_OVER = 4002  # the session was resumed on another connection
