"""The cloud recording commands of protocol v1 (seed 002 StartRemoteRecord, StopRemoteRecord,
PauseRemoteRecord, ResumeRemoteRecord, GetRecordInfo), forwarded to the recorder for the session's user,
and the data of the recording push OnRemoteRecordOver the room manager delivers.

The recorder checks that the session's user is a participant of the room it records (and that the job
is its app's), so the commands are thin: validate params, call, answer the job as JSON.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from parley.recorder.v1 import recorder_pb2
from parley.recorder.v1.recorder_pb2_grpc import RecorderServiceStub
from parley.rooms.v1 import delivery_pb2
from pydantic import BaseModel, ConfigDict, StringConstraints

from services.core.errors import from_rpc_error
from services.gateway.commands import Command
from services.gateway.protocol import Name, parse_params
from services.gateway.sessions import Device, Session, User

_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True)

RecordId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RECORD_STATES = {
    recorder_pb2.RECORD_STATE_RECORDING: "recording",
    recorder_pb2.RECORD_STATE_PAUSED: "paused",
    recorder_pb2.RECORD_STATE_ENDED: "ended",
    recorder_pb2.RECORD_STATE_FAILED: "failed",
    recorder_pb2.RECORD_STATE_UPLOADING: "uploading",
}


class StartRecord(BaseModel):
    model_config = _STRICT

    room_id: Name
    # Seed 002 appendix 7 recordParam.
    record_param: dict[str, Any] | None = None
    record_third_id: Annotated[str, StringConstraints(max_length=255)] = ""
    # Seed 002 StartRemoteRecord file_path: a folder inside the recorder's storage folder.
    file_path: Annotated[str, StringConstraints(max_length=200)] = ""


class RecordCommand(BaseModel):
    model_config = _STRICT

    record_id: RecordId


class ChangeWatermark(BaseModel):
    model_config = _STRICT

    record_id: RecordId
    # Seed 002 ChangeRemoteRecordWatermark overlaps (appendix 7); the recorder checks the entries.
    overlaps: list[dict[str, Any]]


def _ms(stamp: Timestamp, present: bool) -> int | None:
    return stamp.ToMilliseconds() if present else None


def file_data(file: recorder_pb2.RecordFile) -> dict[str, Any]:
    return {
        "file_id": file.file_id,
        "name": file.name,
        "path": file.path,
        "feed_id": file.feed_id,
        "uid": file.uid,
        "size": file.size_bytes,
        "duration_ms": file.duration_ms,
        "video_codec": file.video_codec,
        "audio_codec": file.audio_codec,
        "media_type": file.media_type,
        "video_packets": file.video_packets,
        "audio_packets": file.audio_packets,
        "first_frame_ms": file.first_frame_ms,
        "started_at_ms": _ms(file.started_at, file.HasField("started_at")),
        "ended_at_ms": _ms(file.ended_at, file.HasField("ended_at")),
    }


def record_info_data(info: recorder_pb2.RecordInfo) -> dict[str, Any]:
    """Seed 002 GetRecordInfo's recordInfo (recordId, status, fileType, filePath), and Parley's details."""
    return {
        "record_id": info.record_id,
        "room_id": info.room_id,
        "status": info.status,
        "state": RECORD_STATES.get(info.state, ""),
        "event_code": info.event_code,
        "file_type": info.file_type,
        "file_path": info.file_path,
        "record_third_id": info.record_third_id,
        "files": [file_data(file) for file in info.files],
        "failure_code": info.failure_code,
        "failure_msg": info.failure_message,
    }


def record_over_data(over: delivery_pb2.RemoteRecordOver) -> dict[str, Any]:
    """The data of `on_remote_record_over` (seed 002 OnRemoteRecordOver)."""
    return {
        "room_id": over.room_id,
        "record_id": over.record_id,
        "status": over.status,
        "files": [file_data(file) for file in over.files],
    }


def _asker(session: Session) -> tuple[str, str]:
    """The app and the uid a session acts as in rooms: a user's uid, a device's sn."""
    identity = session.identity
    if isinstance(identity, User):
        return identity.biz_name, identity.uid
    if isinstance(identity, Device):
        return identity.biz_name, identity.sn
    raise AssertionError("commands run for connected sessions only")


class RecordCommands:
    def __init__(self, recorder: RecorderServiceStub, *, timeout_s: float) -> None:
        self._recorder = recorder
        self._timeout_s = timeout_s

    def commands(self) -> dict[str, Command]:
        return {
            "start_record": Command(self._start),
            "stop_record": Command(self._stop),
            "pause_record": Command(self._pause),
            "resume_record": Command(self._resume),
            "get_record_info": Command(self._info),
            "change_record_watermark": Command(self._watermark),
        }

    async def _start(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        start = parse_params(StartRecord, params)
        biz_name, uid = _asker(session)
        started = await self._call(
            self._recorder.StartRecording(
                recorder_pb2.StartRecordingRequest(
                    room_id=start.room_id,
                    biz_name=biz_name,
                    uid=uid,
                    record_param_json=json.dumps(start.record_param)
                    if start.record_param is not None
                    else "",
                    record_third_id=start.record_third_id,
                    file_path=start.file_path,
                ),
                timeout=self._timeout_s,
            )
        )
        return {"record_id": started.record_id, "record_third_id": start.record_third_id}

    async def _stop(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return record_info_data(await self._control(session, params, self._recorder.StopRecording))

    async def _pause(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return record_info_data(await self._control(session, params, self._recorder.PauseRecording))

    async def _resume(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return record_info_data(await self._control(session, params, self._recorder.ResumeRecording))

    async def _watermark(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        change = parse_params(ChangeWatermark, params)
        biz_name, uid = _asker(session)
        info = await self._call(
            self._recorder.ChangeWatermark(
                recorder_pb2.ChangeWatermarkRequest(
                    record_id=change.record_id,
                    biz_name=biz_name,
                    uid=uid,
                    overlaps_json=json.dumps(change.overlaps),
                ),
                timeout=self._timeout_s,
            )
        )
        return {"record_id": info.record_id}

    async def _info(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        command = parse_params(RecordCommand, params)
        biz_name, _ = _asker(session)
        info = await self._call(
            self._recorder.GetRecordInfo(
                recorder_pb2.GetRecordInfoRequest(record_id=command.record_id, biz_name=biz_name),
                timeout=self._timeout_s,
            )
        )
        return {"record_info": record_info_data(info)}

    async def _control(
        self, session: Session, params: dict[str, Any], method: Any
    ) -> recorder_pb2.RecordInfo:
        command = parse_params(RecordCommand, params)
        biz_name, uid = _asker(session)
        request = recorder_pb2.RecordRequest(record_id=command.record_id, biz_name=biz_name, uid=uid)
        info: recorder_pb2.RecordInfo = await self._call(method(request, timeout=self._timeout_s))
        return info

    @staticmethod
    async def _call(call: Any) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
