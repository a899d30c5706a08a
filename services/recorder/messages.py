"""Jobs and their transitions as protobuf messages: RecordInfo for the gRPC answers, RecordingEvent for
parley.recording.v1."""

from __future__ import annotations

from datetime import UTC, datetime

from parley.recorder.v1 import recorder_pb2

from services.core.timestamps import timestamp
from services.recorder.jobs import EventCode, RecordFile, RecordJob, Transition
from services.recorder.params import parse_record_param


def file_message(file: RecordFile) -> recorder_pb2.RecordFile:
    return recorder_pb2.RecordFile(
        name=file.name,
        path=file.path,
        feed_id=file.feed_id,
        uid=file.uid,
        size_bytes=file.size_bytes,
        duration_ms=file.duration_ms,
        video_codec=file.video_codec,
        audio_codec=file.audio_codec,
        media_type=int(file.media_type),
        started_at=timestamp(file.started_at),
        ended_at=timestamp(file.ended_at) if file.ended_at else None,
        video_packets=file.video_packets,
        audio_packets=file.audio_packets,
        first_frame_ms=file.first_frame_ms,
        file_id=file.file_id,
    )


def record_info(job: RecordJob) -> recorder_pb2.RecordInfo:
    return recorder_pb2.RecordInfo(
        record_id=job.record_id,
        room_id=job.room_id,
        event_code=int(job.event_code),
        biz_name=job.biz_name,
        state=recorder_pb2.RecordState.ValueType(int(job.state)),
        status=int(job.status),
        record_third_id=job.record_third_id,
        requested_by=job.requested_by,
        files=[file_message(file) for file in job.files.values()],
        created_at=timestamp(job.created_at),
        ended_at=timestamp(job.ended_at) if job.ended_at else None,
        failure_code=job.failure_code,
        failure_message=job.failure_message,
        file_type=job.file_type,
        file_path=job.location or job.folder,
    )


def record_result(job: RecordJob, transition: Transition) -> recorder_pb2.RecordResult:
    return recorder_pb2.RecordResult(
        status=int(transition.status or 0),
        file_type=job.file_type,
        file_path=job.location or job.folder,
        record_start_time=job.record_start_ms(),
        media_type=int(job.result_media_type()),
        files=[file_message(file) for file in job.files.values()],
    )


def recording_event(job: RecordJob, transition: Transition) -> recorder_pb2.RecordingEvent:
    return recorder_pb2.RecordingEvent(
        record_id=job.record_id,
        room_id=job.room_id,
        biz_name=job.biz_name,
        event_code=int(transition.code),
        state=recorder_pb2.RecordState.ValueType(int(transition.state)),
        feed_id=transition.feed_id,
        message=transition.message,
        file=file_message(transition.file) if transition.file else None,
        record_result=record_result(job, transition) if transition.code is EventCode.RESULT else None,
        record_third_id=job.record_third_id,
        time=timestamp(datetime.now(UTC)),
        silent=parse_record_param(job.record_param_json).silent_record,
    )


def recording_file(job: RecordJob, file: RecordFile, location: str) -> recorder_pb2.RecordingFile:
    return recorder_pb2.RecordingFile(
        file_id=file.file_id,
        record_id=job.record_id,
        room_id=job.room_id,
        biz_name=job.biz_name,
        file_type=job.file_type,
        file_path=location,
        format=file.name.rsplit(".", 1)[-1],
        file=file_message(file),
    )
