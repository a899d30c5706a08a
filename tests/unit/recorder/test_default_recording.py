"""A room created with defaultRecord (seed 002 InitRoomConfig): the room manager starts its recording and
answers the record_id; when the recorder is not there, recordStrongDepend decides whether the room is
undone (-302) or kept with its creator told (on_remote_recording_failed). The recorder is a fake here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from parley.licence.v1 import licence_pb2
from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import delivery_pb2, rooms_pb2

from services.core.errors import ParleyError
from services.rooms.manager import RoomManager
from services.rooms.recording_events import AutoRecordApps, DefaultRecording
from services.rooms.sessions import Attachment
from tests.unit.rooms.test_room_manager import RELAY, RULES


class Recorder:
    def __init__(self, *, answer: str | None) -> None:
        self.answer = answer
        self.requests: list[recorder_pb2.StartRecordingRequest] = []

    async def StartRecording(self, request: recorder_pb2.StartRecordingRequest, **call: Any) -> Any:
        self.requests.append(request)
        if self.answer is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection refused"
            )
        return recorder_pb2.StartRecordingResponse(record_id=self.answer)


def room_of_alice(strong: bool) -> tuple[RoomManager, Any]:
    manager = RoomManager(RULES, relay_address=RELAY, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    manager.open_session("s1", "biz", "alice", Attachment("gw1", "gw1:1", "c1"))
    record = rooms_pb2.RecordOptions(
        default_record=True, record_strong_depend=strong, record_param_json='{"a": 1}'
    )
    room = manager.create_room(biz_name="", creator_uid="", session_id="s1", record=record)
    manager.outcome()
    manager.sessions.take("gw1", limit=100)
    return manager, room


async def test_the_recording_starts_with_the_room_and_its_record_id_is_answered() -> None:
    manager, room = room_of_alice(strong=True)
    recorder = Recorder(answer="r42")
    started = await DefaultRecording(manager, recorder, dispatched_once([]), timeout_s=1).start(room)  # type: ignore[arg-type]
    assert started == "r42"
    [request] = recorder.requests
    assert (request.room_id, request.biz_name, request.uid, request.record_param_json) == (
        room.room_id,
        "biz",
        "",
        '{"a": 1}',
    )


def dispatched_once(dispatched: list[None]) -> Callable[[], Awaitable[None]]:
    """A dispatch that notes each time it is called."""

    async def dispatch() -> None:
        dispatched.append(None)

    return dispatch


async def test_a_room_that_depends_on_its_recording_is_undone_with_302() -> None:
    manager, room = room_of_alice(strong=True)
    dispatched: list[None] = []
    recording = DefaultRecording(manager, Recorder(answer=None), dispatched_once(dispatched), timeout_s=1)  # type: ignore[arg-type]
    with pytest.raises(ParleyError) as refused:
        await recording.start(room)
    assert (refused.value.code, refused.value.kind.reason) == (-302, "CREATE_ROOM_RECORD_FAILED")
    assert manager.rooms == 0 and dispatched
    assert manager.sessions.get("s1").room_id is None


async def test_a_room_that_does_not_depend_on_it_is_kept_and_its_creator_told() -> None:
    manager, room = room_of_alice(strong=False)
    recording = DefaultRecording(manager, Recorder(answer=None), dispatched_once([]), timeout_s=1)  # type: ignore[arg-type]
    assert await recording.start(room) == ""
    assert manager.rooms == 1
    told = [item.push for item in manager.sessions.take("gw1", limit=100)]
    assert told == [
        delivery_pb2.RemoteRecordingFailed(
            room_id=room.room_id, record_id="", feed_id="", code=-10311, msg="connection refused"
        )
    ]


class Licence:
    """GetApp of a licence service: the app's autoRecord, or an error of that status."""

    def __init__(self, auto_record: bool) -> None:
        self.auto_record = auto_record
        self.failure: grpc.StatusCode | None = None
        self.asked = 0

    async def GetApp(self, request: licence_pb2.GetAppRequest, **call: Any) -> licence_pb2.App:
        self.asked += 1
        if self.failure is not None:
            raise grpc.aio.AioRpcError(self.failure, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")
        return licence_pb2.App(
            biz_name=request.biz_name, settings=licence_pb2.AppSettings(auto_record=self.auto_record)
        )


async def test_auto_record_is_asked_once_per_ttl_and_the_last_answer_outlives_an_outage() -> None:
    licence = Licence(auto_record=True)
    clock = [0.0]
    apps = AutoRecordApps(licence, ttl_s=30, timeout_s=1, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert await apps.auto_record("biz") and await apps.auto_record("biz")
    assert licence.asked == 1
    clock[0] = 31.0
    licence.failure = grpc.StatusCode.UNAVAILABLE
    assert await apps.auto_record("biz")
    # Never answered: not recorded rather than refused; an unknown app records nothing.
    assert not await apps.auto_record("other")
    licence.failure = grpc.StatusCode.NOT_FOUND
    assert not await apps.auto_record("gone")


async def test_a_room_of_an_app_with_auto_record_is_wanted_unless_p2p() -> None:
    manager, _ = room_of_alice(strong=True)
    recording = DefaultRecording(
        manager,
        Recorder(answer="r1"),  # type: ignore[arg-type]
        dispatched_once([]),
        timeout_s=1,
        apps=AutoRecordApps(Licence(auto_record=True), ttl_s=30, timeout_s=1),  # type: ignore[arg-type]
    )
    manager.open_session("s2", "biz", "bob", Attachment("gw1", "gw1:1", "c2"))
    plain = manager.create_room(
        biz_name="", creator_uid="", session_id="s2", record=rooms_pb2.RecordOptions()
    )
    assert await recording.wanted(plain)
    manager.open_session("s3", "biz", "carol", Attachment("gw1", "gw1:1", "c3"))
    p2p = manager.create_room(
        biz_name="", creator_uid="", session_id="s3", record=rooms_pb2.RecordOptions(), engine=2
    )
    assert not await recording.wanted(p2p)
