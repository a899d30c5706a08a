"""The call commands of protocol v1 (docs/protocol.md, "Calls"): a device calls a user of its app (seed
000 doWxCloudVoipCallV2) or a user calls a device (seed 003 initByCaller), the callee answers or
rejects, either hangs up, and either asks whether it is busy. Calls live in the room manager, which
checks who may answer; these commands parse and pass them on.
"""

from __future__ import annotations

from typing import Any

from parley.rooms.v1 import rooms_pb2
from parley.rooms.v1.room_sessions_pb2_grpc import RoomSessionServiceStub

from services.gateway.commands import Command
from services.gateway.errors import CALL_WRONG_PARTY
from services.gateway.protocol import CallDevice, CallOptions, CallRef, StartCall, parse_params
from services.gateway.room_commands import ask_rooms
from services.gateway.room_sessions import RoomSessions
from services.gateway.sessions import Device, Session

MEDIA = {"audio": rooms_pb2.CALL_MEDIA_AUDIO, "video": rooms_pb2.CALL_MEDIA_VIDEO}


class CallCommands:
    def __init__(
        self,
        rooms: RoomSessionServiceStub,
        room_sessions: RoomSessions,
        *,
        timeout_s: float,
        call_timeout_s: float,
    ) -> None:
        """`call_timeout_s` bounds `call`, for which the room manager asks the licence service first."""
        self._rooms = rooms
        self._room_sessions = room_sessions
        self._timeout_s = timeout_s
        self._call_timeout_s = call_timeout_s

    def commands(self) -> dict[str, Command]:
        return {
            "call": Command(self._call),
            "answer_call": Command(self._answer_call),
            "reject_call": Command(self._reject_call),
            "hang_up": Command(self._hang_up),
            "is_busy": Command(self._is_busy),
        }

    async def _call(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        caller = session.identity
        order: CallOptions
        if isinstance(caller, Device):
            device_call = parse_params(StartCall, params)
            order = device_call
            callee = {"open_id": device_call.open_id, "model_id": device_call.model_id or caller.model_id}
        elif "open_id" in params:
            raise CALL_WRONG_PARTY("a user calls a device (sn), not another user")
        else:
            user_call = parse_params(CallDevice, params)
            order = user_call
            callee = {"sn": user_call.sn}
        video = order.video
        request = rooms_pb2.StartCallRequest(
            session_id=session.id,
            media=MEDIA[order.media],
            video=rooms_pb2.VideoFormat(width=video.width, height=video.height, fps=video.fps)
            if video is not None
            else None,
            caller_camera_on=order.caller_camera_on,
            callee_camera_on=order.callee_camera_on,
            time_limit_s=order.time_limit_s or 0,
            **callee,
        )
        started = await ask_rooms(
            self._room_sessions, session, lambda: self._rooms.StartCall(request, timeout=self._call_timeout_s)
        )
        return {"call_id": started.call_id}

    async def _answer_call(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        call = parse_params(CallRef, params)
        answered = await ask_rooms(
            self._room_sessions,
            session,
            lambda: self._rooms.AnswerCall(
                rooms_pb2.CallRequest(session_id=session.id, call_id=call.call_id), timeout=self._timeout_s
            ),
        )
        return {"call_id": call.call_id, "room_id": answered.room_id, "rtoken": answered.rtoken}

    async def _reject_call(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        call = parse_params(CallRef, params)
        await ask_rooms(
            self._room_sessions,
            session,
            lambda: self._rooms.RejectCall(
                rooms_pb2.CallRequest(session_id=session.id, call_id=call.call_id), timeout=self._timeout_s
            ),
        )
        return {}

    async def _hang_up(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        call = parse_params(CallRef, params)
        await ask_rooms(
            self._room_sessions,
            session,
            lambda: self._rooms.HangUp(
                rooms_pb2.CallRequest(session_id=session.id, call_id=call.call_id), timeout=self._timeout_s
            ),
        )
        return {}

    async def _is_busy(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        request = rooms_pb2.IsBusyRequest(session_id=session.id)
        answer = await ask_rooms(
            self._room_sessions, session, lambda: self._rooms.IsBusy(request, timeout=self._timeout_s)
        )
        # Seed 000 isWxCloudVoipBusyV2: 1 busy, 0 free.
        return {"busy": int(answer.busy)}
