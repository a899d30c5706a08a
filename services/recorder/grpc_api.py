"""gRPC handlers of the recorder: translate messages and call the recorder (recorder.py: jobs) or the
files of ended jobs (stored_files.py)."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from parley.recorder.v1 import recorder_pb2, recorder_pb2_grpc

from services.recorder.errors import RECORD_INFO_PARAMS
from services.recorder.messages import record_info, recording_file
from services.recorder.recorder import Recorder
from services.recorder.stored_files import StoredFiles

Context: TypeAlias = grpc.aio.ServicerContext


class RecorderServicer(recorder_pb2_grpc.RecorderServiceServicer):
    def __init__(self, recorder: Recorder, files: StoredFiles) -> None:
        self._recorder = recorder
        self._files = files

    async def StartRecording(
        self, request: recorder_pb2.StartRecordingRequest, context: Context
    ) -> recorder_pb2.StartRecordingResponse:
        job = await self._recorder.start(
            room_id=request.room_id,
            biz_name=request.biz_name,
            uid=request.uid,
            record_param_json=request.record_param_json,
            record_third_id=request.record_third_id,
            file_path=request.file_path,
        )
        return recorder_pb2.StartRecordingResponse(record_id=job.record_id)

    async def StopRecording(
        self, request: recorder_pb2.RecordRequest, context: Context
    ) -> recorder_pb2.RecordInfo:
        job = await self._recorder.stop(request.record_id, biz_name=request.biz_name, uid=request.uid)
        return record_info(job)

    async def PauseRecording(
        self, request: recorder_pb2.RecordRequest, context: Context
    ) -> recorder_pb2.RecordInfo:
        job = await self._recorder.pause(request.record_id, biz_name=request.biz_name, uid=request.uid)
        return record_info(job)

    async def ResumeRecording(
        self, request: recorder_pb2.RecordRequest, context: Context
    ) -> recorder_pb2.RecordInfo:
        job = await self._recorder.resume(request.record_id, biz_name=request.biz_name, uid=request.uid)
        return record_info(job)

    async def GetRecordInfo(
        self, request: recorder_pb2.GetRecordInfoRequest, context: Context
    ) -> recorder_pb2.RecordInfo:
        if not request.record_id:
            raise RECORD_INFO_PARAMS()
        return record_info(await self._recorder.info(request.record_id, biz_name=request.biz_name))

    async def ChangeWatermark(
        self, request: recorder_pb2.ChangeWatermarkRequest, context: Context
    ) -> recorder_pb2.RecordInfo:
        job = await self._recorder.change_watermark(
            request.record_id, request.overlaps_json, biz_name=request.biz_name, uid=request.uid
        )
        return record_info(job)

    async def ListRecordings(
        self, request: recorder_pb2.ListRecordingsRequest, context: Context
    ) -> recorder_pb2.ListRecordingsResponse:
        page, total = await self._files.list_files(
            request.biz_name,
            start_ms=request.start_ms,
            end_ms=request.end_ms,
            record_id=request.record_id,
            offset=request.offset,
            limit=request.limit,
        )
        return recorder_pb2.ListRecordingsResponse(
            recordings=[recording_file(job, file, self._files.location_of(job, file)) for job, file in page],
            total=total,
        )

    async def GetRecordingFile(
        self, request: recorder_pb2.RecordingFileRequest, context: Context
    ) -> recorder_pb2.RecordingFile:
        job, file = await self._files.file(request.biz_name, request.file_id)
        return recording_file(job, file, self._files.location_of(job, file))

    async def ReadRecordingFile(
        self, request: recorder_pb2.ReadRecordingFileRequest, context: Context
    ) -> recorder_pb2.ReadRecordingFileResponse:
        data = await self._files.read_file(request.biz_name, request.file_id, request.offset, request.length)
        return recorder_pb2.ReadRecordingFileResponse(data=data)

    async def DeleteRecordingFiles(
        self, request: recorder_pb2.DeleteRecordingFilesRequest, context: Context
    ) -> recorder_pb2.DeleteRecordingFilesResponse:
        deleted = await self._files.delete_files(request.biz_name, list(request.file_ids))
        return recorder_pb2.DeleteRecordingFilesResponse(deleted=deleted)
