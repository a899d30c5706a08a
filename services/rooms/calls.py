"""Device-to-phone calls (seeds 000 and 003), in one plain object: who calls whom, ringing, answers, and
how a call ends. No transport here, and no licence check: the service asks the licence service whether
the device may call before `start`, and `check_free` lets it refuse a busy line without asking.

A call rings every session of the user; the first to answer takes it, and the call's media goes through a
room the room manager makes for it (both sides are given its id and rtoken and join it like any room).
How a call ends decides what the device hears (seed 000, 注意事项 5 and 6): a hang-up (by either side,
or the time limit) sends it IV_AVT_COMMAND_CALL_HANG_UP before the call closes; a side whose network went
away (its session ended after the grace) closes the call without that command.

Calls are kept in a `CallBook`, the room store (services/rooms/store.py): with a shared store a call is a
record with its own lease, like a room, so that when its room manager dies another takes it over and its
timers (ringing, the time limit), which are times in the record, fire there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Protocol

from parley.rooms.v1 import delivery_pb2, events_pb2, rooms_pb2

from services.core.timestamps import timestamp
from services.rooms.changes import Change
from services.rooms.errors import CALL_BUSY, CALL_NOT_FOUND, CALLEE_OFFLINE
from services.rooms.pushes import Push
from services.rooms.sessions import ClientSession, SessionBook

if TYPE_CHECKING:
    from services.rooms.room import Room

# Seed 000 onRecvCommand: the signalling a device gets when the other side hangs up normally.
HANG_UP_COMMAND = "IV_AVT_COMMAND_CALL_HANG_UP"


class CallMedia(IntEnum):
    """rooms.proto CallMedia, whose values these are."""

    AUDIO = rooms_pb2.CALL_MEDIA_AUDIO
    VIDEO = rooms_pb2.CALL_MEDIA_VIDEO


class EndReason(StrEnum):
    HANG_UP = "hang_up"
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    TIME_LIMIT = "time_limit"
    NETWORK = "network"
    # Only to the user's other sessions: the call goes on, on the session that answered.
    ANSWERED_ELSEWHERE = "answered_elsewhere"


class Side(StrEnum):
    DEVICE = "device"
    USER = "user"
    PLATFORM = ""


@dataclass(frozen=True)
class CallRules:
    ring_timeout_s: float


@dataclass(frozen=True)
class CallOrder:
    """What the caller asked for: a device calls a user by open_id (seed 000 doWxCloudVoipCallV2), or a
    user calls a device by sn (seed 003 initByCaller)."""

    # The user a device calls; "" when a user calls.
    open_id: str
    media: CallMedia
    video: rooms_pb2.VideoFormat | None
    caller_camera_on: bool
    callee_camera_on: bool
    # 0 for no limit (seed 003 initByCaller timeLimit).
    time_limit_s: int
    # The device a user calls; "" when a device calls.
    sn: str = ""


@dataclass
class Call:
    call_id: str
    biz_name: str
    sn: str
    open_id: str
    caller: Side
    caller_session_id: str
    order: CallOrder
    rang_at: float
    callee_session_id: str | None = None
    answered_at: float | None = None
    room_id: str = ""

    @property
    def callee(self) -> Side:
        return Side.USER if self.caller is Side.DEVICE else Side.DEVICE

    @property
    def callee_uid(self) -> str:
        """The uid whose sessions ring: the user's open_id, or the device's sn."""
        return self.open_id if self.caller is Side.DEVICE else self.sn

    @property
    def device_session_id(self) -> str | None:
        """None while a user's call to a device rings."""
        return self.caller_session_id if self.caller is Side.DEVICE else self.callee_session_id


class CallBook(Protocol):
    """Where calls are kept between operations (the room store); as with rooms, a call changed is saved."""

    def load_call(self, call_id: str) -> Call | None: ...

    def save_call(self, call: Call) -> None: ...

    def delete_call(self, call_id: str) -> None: ...

    def call_ids(self) -> list[str]: ...

    def call_on_line(self, biz_name: str, uid: str) -> str | None:
        """The call a device (by sn) or a user (by open_id) is in: one at a time."""
        ...


class LineIndex:
    """(biz_name, sn or open_id) -> the call that party is in, kept from the calls saved."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], str] = {}

    def on_line(self, biz_name: str, uid: str) -> str | None:
        return self._lines.get((biz_name, uid))

    def index(self, call: Call) -> None:
        self._lines[(call.biz_name, call.sn)] = call.call_id
        self._lines[(call.biz_name, call.open_id)] = call.call_id

    def forget(self, call: Call) -> None:
        for line in ((call.biz_name, call.sn), (call.biz_name, call.open_id)):
            if self._lines.get(line) == call.call_id:
                del self._lines[line]


class Calls:
    def __init__(
        self,
        rules: CallRules,
        sessions: SessionBook,
        book: CallBook,
        *,
        open_room: Callable[[str, str], Room],
        close_room: Callable[[str], None],
        record: Callable[[Change], None],
        clock: Callable[[], float],
        now: Callable[[], datetime],
    ) -> None:
        """`open_room(biz_name, creator_uid)` makes the room a call's media goes through; `close_room`
        takes everyone out of it when the call ends; `record` reports a fact."""
        self._rules = rules
        self._sessions = sessions
        self._open_room = open_room
        self._close_room = close_room
        self._record = record
        self._clock = clock
        self._now = now
        self._book = book

    def is_busy(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        return self._book.call_on_line(session.biz_name, session.uid) is not None

    def check_free(self, session_id: str) -> ClientSession:
        """The calling device's session, unless it is in a call already."""
        session = self._sessions.get(session_id)
        if self._book.call_on_line(session.biz_name, session.uid) is not None:
            raise CALL_BUSY("this device is in a call; hang up first")
        return session

    def start(self, session_id: str, order: CallOrder) -> Call:
        """Ring the callee: the user a device calls, or the device a user calls. The licence service has
        allowed the call."""
        caller = self.check_free(session_id)
        if order.sn:
            call = Call(
                secrets.token_hex(8),
                caller.biz_name,
                order.sn,
                caller.uid,
                Side.USER,
                session_id,
                order,
                self._clock(),
            )
        else:
            call = Call(
                secrets.token_hex(8),
                caller.biz_name,
                caller.uid,
                order.open_id,
                Side.DEVICE,
                session_id,
                order,
                self._clock(),
            )
        if self._book.call_on_line(call.biz_name, call.callee_uid) is not None:
            raise CALL_BUSY(f"{call.callee_uid} is in a call")
        callee_sessions = self._sessions.sessions_of(call.biz_name, call.callee_uid)
        if not callee_sessions:
            raise CALLEE_OFFLINE(f"{call.callee_uid} is not connected")
        self._book.save_call(call)
        ringing = delivery_pb2.CallIncoming(
            call_id=call.call_id,
            sn=call.sn,
            media=rooms_pb2.CallMedia.ValueType(order.media),
            video=order.video,
            caller_camera_on=order.caller_camera_on,
            callee_camera_on=order.callee_camera_on,
            time_limit_s=order.time_limit_s,
            open_id=call.open_id,
            caller=call.caller,
        )
        for callee in callee_sessions:
            self._sessions.push(callee, ringing)
        self._record(
            events_pb2.CallStarted(
                call_id=call.call_id,
                biz_name=call.biz_name,
                sn=call.sn,
                open_id=call.open_id,
                media=rooms_pb2.CallMedia.ValueType(order.media),
                started_at=timestamp(self._now()),
            )
        )
        return call

    def answer(self, session_id: str, call_id: str) -> Room:
        call = self._ringing_for(session_id, call_id)
        call.callee_session_id = session_id
        call.answered_at = self._clock()
        room = self._open_room(call.biz_name, call.sn)
        call.room_id = room.room_id
        self._book.save_call(call)
        accepted = delivery_pb2.CallAccepted(call_id=call.call_id, room_id=room.room_id, rtoken=room.rtoken)
        elsewhere = delivery_pb2.CallClosed(
            call_id=call.call_id, reason=EndReason.ANSWERED_ELSEWHERE, by=call.callee, keep_time_ms=0
        )
        self._push(call.caller_session_id, accepted)
        for callee in self._sessions.sessions_of(call.biz_name, call.callee_uid):
            if callee.session_id == session_id:
                self._sessions.push(callee, accepted)
            else:
                self._sessions.push(callee, elsewhere)
        self._record(
            events_pb2.CallAnswered(
                call_id=call.call_id,
                biz_name=call.biz_name,
                sn=call.sn,
                open_id=call.open_id,
                room_id=room.room_id,
                answered_at=timestamp(self._now()),
            )
        )
        return room

    def reject(self, session_id: str, call_id: str) -> None:
        call = self._ringing_for(session_id, call_id)
        self._end(call, EndReason.REJECTED, call.callee, hang_up_command=False)

    def hang_up(self, session_id: str, call_id: str) -> None:
        call = self._book.load_call(call_id)
        if call is None or session_id not in self._parties(call):
            raise CALL_NOT_FOUND(f"this session is in no call {call_id}")
        self._end(call, EndReason.HANG_UP, self._side_of(call, session_id), hang_up_command=True)

    def session_closed(self, session: ClientSession, *, network_lost: bool) -> None:
        """A session ended (and is gone from the session book): a `disconnect` hangs up its call; a lost
        network ends it without the hang-up command (seed 000, 注意事项 6)."""
        for call in self._calls():
            if session.session_id in (call.caller_session_id, call.callee_session_id):
                side = self._side_of(call, session.session_id)
                if network_lost:
                    self._end(call, EndReason.NETWORK, side, hang_up_command=False)
                else:
                    self._end(call, EndReason.HANG_UP, side, hang_up_command=True)
            elif (
                call.answered_at is None
                and (session.biz_name, session.uid) == (call.biz_name, call.callee_uid)
                and not self._sessions.sessions_of(call.biz_name, call.callee_uid)
            ):
                # The last ringing session of the callee went away: nobody is left to answer.
                self._end(call, EndReason.NO_ANSWER, Side.PLATFORM, hang_up_command=False)

    def sweep(self, gone: Callable[[str], bool]) -> None:
        """Ring timeouts and time limits; and calls a side of which is `gone` (its session was another room
        manager's, which died, and did not come back within the grace): as if its network went away."""
        now = self._clock()
        for call in self._calls():
            lost = [sid for sid in (call.caller_session_id, call.callee_session_id) if sid and gone(sid)]
            if lost:
                self._end(call, EndReason.NETWORK, self._side_of(call, lost[0]), hang_up_command=False)
            elif call.answered_at is None:
                if call.rang_at + self._rules.ring_timeout_s <= now:
                    self._end(call, EndReason.NO_ANSWER, Side.PLATFORM, hang_up_command=False)
            elif call.order.time_limit_s and call.answered_at + call.order.time_limit_s <= now:
                self._end(call, EndReason.TIME_LIMIT, Side.PLATFORM, hang_up_command=True)

    def _ringing_for(self, session_id: str, call_id: str) -> Call:
        session = self._sessions.get(session_id)
        call = self._book.load_call(call_id)
        if (
            call is None
            or call.answered_at is not None
            or (session.biz_name, session.uid) != (call.biz_name, call.callee_uid)
        ):
            raise CALL_NOT_FOUND(f"no call {call_id} is ringing for this session")
        return call

    def _calls(self) -> list[Call]:
        """The calls kept (in a shared store: those this room manager owns)."""
        calls = (self._book.load_call(call_id) for call_id in self._book.call_ids())
        return [call for call in calls if call is not None]

    @staticmethod
    def _side_of(call: Call, session_id: str) -> Side:
        return call.caller if session_id == call.caller_session_id else call.callee

    def _parties(self, call: Call) -> set[str]:
        """The sessions a call concerns: the caller's, and the callee's that answered or are ringing."""
        if call.callee_session_id is not None:
            return {call.caller_session_id, call.callee_session_id}
        ringing = {s.session_id for s in self._sessions.sessions_of(call.biz_name, call.callee_uid)}
        return {call.caller_session_id} | ringing

    def _end(self, call: Call, reason: EndReason, by: Side, *, hang_up_command: bool) -> None:
        self._book.delete_call(call.call_id)
        keep_time_ms = 0 if call.answered_at is None else round((self._clock() - call.answered_at) * 1000)
        if hang_up_command and call.device_session_id is not None:
            # Before the close: the device tells a hang-up from a lost network by this command coming first.
            self._push(
                call.device_session_id,
                delivery_pb2.CallCommand(call_id=call.call_id, command=HANG_UP_COMMAND),
            )
        closed = delivery_pb2.CallClosed(
            call_id=call.call_id, reason=reason, by=by, keep_time_ms=keep_time_ms
        )
        for session_id in self._parties(call):
            self._push(session_id, closed)
        if call.room_id:
            self._close_room(call.room_id)
        self._record(
            events_pb2.CallEnded(
                call_id=call.call_id,
                biz_name=call.biz_name,
                sn=call.sn,
                open_id=call.open_id,
                room_id=call.room_id,
                reason=reason,
                by=by,
                keep_time_ms=keep_time_ms,
                ended_at=timestamp(self._now()),
            )
        )

    def _push(self, session_id: str, push: Push) -> None:
        session = self._sessions.find(session_id)
        if session is not None:
            self._sessions.push(session, push)
