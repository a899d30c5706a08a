"""Cloud recording as the room manager sees it: starting the recording of a room created with
defaultRecord (seed 002 InitRoomConfig), and telling a room's participants what became of its recordings.

The recorder reports every state change of a job on parley.recording.v1 (services/recorder). The room
manager knows who is in the room and which gateway holds their sessions, so it turns two of those facts
into pushes: the result (99) into `on_remote_record_over`, and a failure (1000xx, 1001xx, 1002xx) into
`on_remote_recording_failed` (seed 002 OnRemoteRecordOver, OnRemoteRecordingFailed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import structlog
from parley.recorder.v1 import recorder_pb2
from parley.recorder.v1.recorder_pb2_grpc import RecorderServiceStub
from parley.rooms.v1 import delivery_pb2

from services.core.errors import INTERNAL, UNAVAILABLE, from_rpc_error
from services.core.events import Envelope, EventConsumer, RecentEventIds
from services.core.shared_errors import START_FAILED
from services.rooms.errors import CREATE_ROOM_RECORD_FAILED
from services.rooms.manager import RoomManager
from services.rooms.room import Room

log = structlog.get_logger(__name__)

# Seed 002 recording event codes: 99 the result; 1000xx, 1001xx, 1002xx failures.
RESULT = 99


def is_failure(code: int) -> bool:
    return 100000 <= code < 100300


class DefaultRecording:
    """Starts the recording of a room created with defaultRecord; `dispatch` sends on what it caused."""

    def __init__(
        self,
        manager: RoomManager,
        recorder: RecorderServiceStub,
        dispatch: Callable[[], Awaitable[None]],
        *,
        timeout_s: float,
    ) -> None:
        self._manager = manager
        self._recorder = recorder
        self._dispatch = dispatch
        self._timeout_s = timeout_s

    async def start(self, room: Room) -> str:
        """The record_id; when the recorder refuses or does not answer, a room with recordStrongDepend is
        undone (-302), and any other room is kept, its participants told the recording failed."""
        try:
            started = await self._recorder.StartRecording(
                recorder_pb2.StartRecordingRequest(
                    room_id=room.room_id,
                    biz_name=room.biz_name,
                    record_param_json=room.record.record_param_json,
                ),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            refusal = from_rpc_error(error)
            log.warning(
                "default_record_failed",
                room_id=room.room_id,
                strong_depend=room.record.record_strong_depend,
                code=refusal.code,
                msg=refusal.message,
            )
            if room.record.record_strong_depend:
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
                    code=event.event_code,
                    msg=event.message,
                ),
            )
        else:
            return
        await dispatch()
