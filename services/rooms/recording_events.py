"""Cloud recording as the room manager sees it: starting the recording of a room created with
defaultRecord (seed 002 InitRoomConfig) or of an app that records every call (its autoRecord setting, seed
002 功能配置 "云端自动录制"), and telling a room's participants what became of its recordings.

The recorder reports every state change of a job on parley.recording.v1 (services/recorder). The room
manager knows who is in the room and which gateway holds their sessions, so it turns two of those facts
into pushes: the result (99) into `on_remote_record_over`, and a failure (1000xx, 1001xx, 1002xx) into
`on_remote_recording_failed` (seed 002 OnRemoteRecordOver, OnRemoteRecordingFailed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc
import structlog
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.recorder.v1 import recorder_pb2
from parley.recorder.v1.recorder_pb2_grpc import RecorderServiceStub
from parley.rooms.v1 import delivery_pb2

from services.core.errors import INTERNAL, UNAVAILABLE, from_rpc_error
from services.core.events import Envelope, EventConsumer, RecentEventIds
from services.core.shared_errors import START_FAILED
from services.rooms.errors import CREATE_ROOM_RECORD_FAILED
from services.rooms.manager import RoomManager
from services.rooms.p2p import Engine
from services.rooms.room import Room

log = structlog.get_logger(__name__)

# Seed 002 recording event codes: 99 the result; 1000xx, 1001xx, 1002xx failures.
RESULT = 99

# Seed 002 OnRemoteRecordingFailed `code`: "-12481 eventCode 值为 1, -12482 eventCode 值为 2". The seed's
# recording callback numbers its failure stages (1000xx "录制启动阶段失败", 1001xx "录制过程中失败", 1002xx
# "录制结束阶段失败"); Parley reads eventCode 1 as the starting stage and 2 as any later one, so a client
# tells a recording that never started from one that broke off. The push's event_code has the exact code.
FAILED_STARTING = -12481
FAILED_RECORDING = -12482


def is_failure(code: int) -> bool:
    return 100000 <= code < 100300


def push_code(event_code: int) -> int:
    return FAILED_STARTING if event_code < 100100 else FAILED_RECORDING


class AutoRecordApps:
    """Which apps have autoRecord, asked of the licence service (GetApp) and kept for `ttl_s`.

    When the licence service does not answer, the last answer for the app is used; an app never answered
    is taken as not recording, and that is logged: the room is not refused for a setting that could not
    be read (its users could not have connected without the licence service either).
    """

    def __init__(
        self,
        licence: LicenceServiceStub,
        *,
        ttl_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._licence = licence
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        # biz_name -> (when asked, autoRecord)
        self._known: dict[str, tuple[float, bool]] = {}

    async def auto_record(self, biz_name: str) -> bool:
        known = self._known.get(biz_name)
        if known is not None and self._clock() - known[0] < self._ttl_s:
            return known[1]
        try:
            app = await self._licence.GetApp(
                licence_pb2.GetAppRequest(biz_name=biz_name), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                self._known[biz_name] = (self._clock(), False)
                return False
            log.warning(
                "auto_record_unknown", biz_name=biz_name, code=error.code().name, stale=known is not None
            )
            return known[1] if known is not None else False
        self._known[biz_name] = (self._clock(), app.settings.auto_record)
        return app.settings.auto_record


class DefaultRecording:
    """Starts the recording a room wants from its start (defaultRecord, or its app's autoRecord);
    `dispatch` sends on what it caused."""

    def __init__(
        self,
        manager: RoomManager,
        recorder: RecorderServiceStub,
        dispatch: Callable[[], Awaitable[None]],
        *,
        timeout_s: float,
        apps: AutoRecordApps | None = None,
    ) -> None:
        self._manager = manager
        self._recorder = recorder
        self._dispatch = dispatch
        self._timeout_s = timeout_s
        self._apps = apps

    async def wanted(self, room: Room) -> bool:
        """Whether the room is recorded from its start: it asked (defaultRecord), or its app records every
        call. A P2P room's media never reaches the platform: autoRecord cannot apply to it (and
        defaultRecord was refused at create_room, -202)."""
        if room.record.default_record:
            return True
        if room.engine == Engine.P2P or self._apps is None:
            return False
        return await self._apps.auto_record(room.biz_name)

    async def start(self, room: Room, *, strong_depend: bool | None = None) -> str:
        """The record_id; when the recorder refuses or does not answer, a room with recordStrongDepend is
        undone (-302), and any other room is kept, its participants told the recording failed.
        `strong_depend` overrides the room's recordStrongDepend (an answered call is not undone)."""
        strong = room.record.record_strong_depend if strong_depend is None else strong_depend
        try:
            started = await self._recorder.StartRecording(
                recorder_pb2.StartRecordingRequest(
                    room_id=room.room_id,
                    biz_name=room.biz_name,
                    record_param_json=room.record.record_param_json,
                    record_third_id=room.record.record_third_id,
                    file_path=room.record.file_path,
                ),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            refusal = from_rpc_error(error)
            log.warning(
                "default_record_failed",
                room_id=room.room_id,
                strong_depend=strong,
                code=refusal.code,
                msg=refusal.message,
            )
            if strong:
                self._manager.discard_room(room.room_id)
                await self._dispatch()
                raise CREATE_ROOM_RECORD_FAILED(f"the recording could not start: {refusal.message}") from None
            # A recorder that is not there is the seed's "the server failed to start recording".
            code = START_FAILED.code if refusal.kind in (UNAVAILABLE, INTERNAL) else refusal.code
            self._manager.push_room(
                room.room_id,
                delivery_pb2.RemoteRecordingFailed(room_id=room.room_id, code=code, msg=refusal.message),
            )
            await self._dispatch()
            return ""
        return str(started.record_id)


def consume_recording_events(
    consumer: EventConsumer, manager: RoomManager, dispatch: Callable[[], Awaitable[None]]
) -> None:
    # Delivery is at least once: an event seen lately (by ce_id) is not pushed again.
    recent = RecentEventIds()

    @consumer.on(recorder_pb2.RecordingEvent)
    async def recording_event(event: recorder_pb2.RecordingEvent, envelope: Envelope) -> None:
        # Seed 002 silentRecord: the recording is not announced in the room.
        if not recent.first_delivery(envelope.id) or event.silent:
            return
        if event.event_code == RESULT:
            result = event.record_result
            manager.push_room(
                event.room_id,
                delivery_pb2.RemoteRecordOver(
                    room_id=event.room_id, record_id=event.record_id, status=result.status, files=result.files
                ),
            )
        elif is_failure(event.event_code):
            manager.push_room(
                event.room_id,
                delivery_pb2.RemoteRecordingFailed(
                    room_id=event.room_id,
                    record_id=event.record_id,
                    feed_id=event.feed_id,
                    code=push_code(event.event_code),
                    msg=event.message,
                    event_code=event.event_code,
                ),
            )
        else:
            return
        await dispatch()
