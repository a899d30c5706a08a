"""Operator routes for recordings: file management (seed 002 5.2 录制文件管理: list by time range or record
id, play/download, delete one or a batch) and starting/stopping a room's recording from an app's
backend (the seed's server-side StartRemoteRecord / StopRemoteRecord). Thin: each route is one or a few
calls to the recorder's gRPC API (docs/recording.md "File management").

Downloads answer HTTP range requests (one range; RFC 9110 14), so a browser's player can seek.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from parley.recorder.v1 import recorder_pb2, recorder_pb2_grpc
from pydantic import Field

from services.core.errors import INVALID_ARGUMENT
from services.gateway.http_api import ApiModel
from services.gateway.record_commands import RECORD_STATES

RPC_TIMEOUT_S = 10
# What one read asks the recorder for (its most).
CHUNK = 1 << 20
_CONTENT_TYPES = {"mp4": "video/mp4", "flv": "video/x-flv", "webm": "video/webm", "mkv": "video/x-matroska"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RecordingOut(ApiModel):
    """One file as the listing shows it (the issue's JSON, camelCase)."""

    record_id: str
    room_id: str
    file_id: str
    file_type: int
    file_path: str
    format: str
    media_type: int
    size_bytes: int
    duration_ms: int
    # Server time of the file's first frame, ms since the epoch (seed recordResult recordStartTime).
    record_start_time: int
    download_url: str


class RecordingsOut(ApiModel):
    recordings: list[RecordingOut]
    total: int


class BatchDeleteBody(ApiModel):
    file_ids: list[str] = Field(min_length=1, max_length=100)


class DeletedOut(ApiModel):
    deleted: list[str]


class StartRecordingBody(ApiModel):
    biz_name: str = Field(min_length=1, max_length=128)
    # Seed 002 appendix 7 recordParam, with Parley's extensions (docs/recording.md).
    record_param: dict[str, Any] | None = None
    record_third_id: str = Field(default="", max_length=255)
    file_path: str = Field(default="", max_length=200)


class StartedOut(ApiModel):
    record_id: str
    record_third_id: str


class StopRecordingBody(ApiModel):
    biz_name: str = Field(min_length=1, max_length=128)


class RecordInfoOut(ApiModel):
    """Seed 002 GetRecordInfo's recordInfo."""

    record_id: str
    room_id: str
    status: int
    state: str
    file_type: int
    file_path: str
    file_ids: list[str]


def _download_path(biz_name: str, file_id: str) -> str:
    return f"/v1/apps/{biz_name}/recordings/{file_id}/content"


def _recording(item: recorder_pb2.RecordingFile) -> RecordingOut:
    return RecordingOut(
        record_id=item.record_id,
        room_id=item.room_id,
        file_id=item.file_id,
        file_type=item.file_type,
        file_path=item.file_path,
        format=item.format,
        media_type=item.file.media_type,
        size_bytes=item.file.size_bytes,
        duration_ms=item.file.duration_ms,
        record_start_time=item.file.first_frame_ms,
        download_url=_download_path(item.biz_name, item.file_id),
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a Range header asks of a `size`-byte file; None for the whole file; raises
    ValueError when it cannot be satisfied."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise ValueError(header)
    first, last = match.groups()
    if first == "":
        # The last N bytes.
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise ValueError(header)
    return start, end


def recording_routers(recorder: recorder_pb2_grpc.RecorderServiceStub) -> list[APIRouter]:
    files = APIRouter(prefix="/v1/apps/{biz_name}/recordings", tags=["recordings"])
    rooms = APIRouter(prefix="/v1/rooms/{room_id}/recordings", tags=["recordings"])

    @files.get("", summary="List an app's recording files, by time range or record id, paged")
    async def list_recordings(
        biz_name: str,
        start: Annotated[
            int, Query(ge=0, description="ms since the epoch; recordings started from then")
        ] = 0,
        end: Annotated[
            int, Query(ge=0, description="ms since the epoch; recordings started before then")
        ] = 0,
        record_id: Annotated[str, Query(alias="recordId", max_length=64)] = "",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> RecordingsOut:
        answer = await recorder.ListRecordings(
            recorder_pb2.ListRecordingsRequest(
                biz_name=biz_name, start_ms=start, end_ms=end, record_id=record_id, offset=offset, limit=limit
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return RecordingsOut(recordings=[_recording(item) for item in answer.recordings], total=answer.total)

    @files.get("/{file_id}/content", summary="Download (or play) a recording file; HTTP range requests")
    async def download(
        biz_name: str, file_id: str, range: Annotated[str | None, Header()] = None
    ) -> Response:
        item = await recorder.GetRecordingFile(
            recorder_pb2.RecordingFileRequest(biz_name=biz_name, file_id=file_id), timeout=RPC_TIMEOUT_S
        )
        size = item.file.size_bytes
        headers = {
            "accept-ranges": "bytes",
            "content-disposition": f'attachment; filename="{item.file.name}"',
        }
        try:
            asked = byte_range(range, size)
        except ValueError:
            return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
        start, end = asked or (0, size)
        if asked is not None:
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        headers["content-length"] = str(end - start)

        async def chunks() -> AsyncIterator[bytes]:
            offset = start
            while offset < end:
                read = await recorder.ReadRecordingFile(
                    recorder_pb2.ReadRecordingFileRequest(
                        biz_name=biz_name, file_id=file_id, offset=offset, length=min(CHUNK, end - offset)
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
                if not read.data:
                    return
                offset += len(read.data)
                yield read.data

        return StreamingResponse(
            chunks(),
            status_code=206 if asked is not None else 200,
            headers=headers,
            media_type=_CONTENT_TYPES.get(item.format, "application/octet-stream"),
        )

    async def delete(biz_name: str, file_ids: list[str]) -> DeletedOut:
        answer = await recorder.DeleteRecordingFiles(
            recorder_pb2.DeleteRecordingFilesRequest(biz_name=biz_name, file_ids=file_ids),
            timeout=RPC_TIMEOUT_S,
        )
        return DeletedOut(deleted=list(answer.deleted))

    @files.delete("/{file_id}", summary="Delete a recording file from storage and listing")
    async def delete_one(biz_name: str, file_id: str) -> DeletedOut:
        return await delete(biz_name, [file_id])

    @files.post("/batch-delete", summary="Delete several recording files (all checked before any goes)")
    async def delete_batch(biz_name: str, body: BatchDeleteBody) -> DeletedOut:
        return await delete(biz_name, body.file_ids)

    @rooms.post("", status_code=201, summary="Start recording a room (an app's backend)")
    async def start(room_id: str, body: StartRecordingBody) -> StartedOut:
        answer = await recorder.StartRecording(
            recorder_pb2.StartRecordingRequest(
                room_id=room_id,
                biz_name=body.biz_name,
                record_param_json=json.dumps(body.record_param) if body.record_param is not None else "",
                record_third_id=body.record_third_id,
                file_path=body.file_path,
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return StartedOut(record_id=answer.record_id, record_third_id=body.record_third_id)

    @rooms.post("/{record_id}/stop", summary="Stop a room's recording (an app's backend)")
    async def stop(room_id: str, record_id: str, body: StopRecordingBody) -> RecordInfoOut:
        known = await recorder.GetRecordInfo(
            recorder_pb2.GetRecordInfoRequest(record_id=record_id, biz_name=body.biz_name),
            timeout=RPC_TIMEOUT_S,
        )
        if known.room_id != room_id:
            raise INVALID_ARGUMENT(f"recording {record_id} is not of room {room_id}")
        info = await recorder.StopRecording(
            recorder_pb2.RecordRequest(record_id=record_id, biz_name=body.biz_name), timeout=RPC_TIMEOUT_S
        )
        return RecordInfoOut(
            record_id=info.record_id,
            room_id=info.room_id,
            status=info.status,
            state=RECORD_STATES.get(info.state, ""),
            file_type=info.file_type,
            file_path=info.file_path,
            file_ids=[file.file_id for file in info.files],
        )

    return [files, rooms]
