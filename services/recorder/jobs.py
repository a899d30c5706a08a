"""A recording job and its rules, in plain objects: which state changes are allowed and which event (with
the seed's event code) each one reports. No I/O here: `services/recorder/recorder.py` (live jobs) and
`stored_files.py` (uploads, deletions) store every transition with its event (store.py) before they answer.

States: RECORDING <-> PAUSED, then ENDED (stopped; the result reports success) or FAILED (a failure
that leaves nothing to record: storage that cannot be written, the process that died). With an object
store, a stopped job is UPLOADING (seed GetRecordInfo status 1) until its files are stored (ENDED) or
the upload failed after its retries (FAILED, 100201). A failure of one
feed (the relay refusing its subscription) is reported and the job goes on with the others.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from services.recorder.errors import (
    PAUSE_RECORD_STATE,
    RECORD_ENDED,
    RECORDING_BUSY,
    RESUME_RECORD_STATE,
)


class EventCode(IntEnum):
    """Seed 002 recording callback eventCode (云端录制回调), and Parley's own for pause and resume."""

    # "录制某条流成功": one stream's file is complete.
    STREAM_RECORDED = 0
    # "初始化成功".
    INITIALISED = 10
    # "录制结束".
    ENDED = 11
    # "录制结果": sent with recordResult.
    RESULT = 99
    # "录制警告".
    WARNING = 50
    # "订阅流失败" (1000xx: failures while starting).
    SUBSCRIBE_FAILED = 100003
    # "订阅路数缺失": fewer streams recorded than recordTotalStream by startTimeout.
    STREAMS_MISSING = 100004
    # "连接 mcu 失败": the composite's mixer (its encoders, its file) could not start.
    MIXER_FAILED = 100005
    # "实际自定义混流流数大于设置数目": a stream whose tag layoutParam / tagPositions leaves out.
    TOO_MANY_MIXED = 100007
    # "录制文件创建失败" (1001xx: failures while recording).
    FILE_CREATE_FAILED = 100101
    # "录制子进程崩溃": the recorder stopped while the job was recording (found at its next start).
    PROCESS_CRASHED = 100105
    # "磁盘满或者写文件失败".
    WRITE_FAILED = 100106
    # "上传文件失败" (1002xx: failures at the end).
    UPLOAD_FAILED = 100201
    # "流断开警告", "低帧率警告".
    STREAM_DISCONNECTED = 500301
    LOW_FRAME_RATE = 500302
    # Parley's own: the seed reports no event for pause and resume, yet they change the job's state.
    PAUSED = 910001
    RESUMED = 910002
    # Parley's own: a finished file deleted through file management (seed 002 5.2 names no event).
    FILE_DELETED = 910003


class JobState(IntEnum):
    """The proto's RecordState numbers."""

    RECORDING = 1
    PAUSED = 2
    ENDED = 3
    FAILED = 4
    UPLOADING = 5


class ResultStatus(IntEnum):
    """Seed 002 recordResult / GetRecordInfo status."""

    RECORDING = 0
    UPLOADING = 1
    SUCCEEDED = 2
    FAILED = 3


class MediaType(IntEnum):
    """Seed 002 recordResult mediaType."""

    AUDIO_VIDEO = 0
    AUDIO = 1
    VIDEO = 2


# Seed 002 recordResult fileType: 1 local (the recorder's storage folder), 2 an object store.
FILE_TYPE_LOCAL = 1
FILE_TYPE_OBJECT_STORE = 2


@dataclass
class RecordFile:
    """One feed's file. `path` is relative to the storage folder."""

    name: str
    path: str
    feed_id: str
    uid: str
    started_at: datetime
    video_codec: str = ""
    audio_codec: str = ""
    size_bytes: int = 0
    duration_ms: int = 0
    video_packets: int = 0
    audio_packets: int = 0
    # Server time of the first frame written, ms since the epoch; 0 before one was.
    first_frame_ms: int = 0
    ended_at: datetime | None = None
    # Its id in file management.
    file_id: str = field(default_factory=lambda: f"f{secrets.token_hex(8)}")

    @property
    def media_type(self) -> MediaType:
        if self.video_codec and not self.audio_codec:
            return MediaType.VIDEO
        if self.audio_codec and not self.video_codec:
            return MediaType.AUDIO
        return MediaType.AUDIO_VIDEO


@dataclass(frozen=True)
class Transition:
    """A state change and the event that reports it."""

    code: EventCode
    state: JobState
    feed_id: str = ""
    message: str = ""
    file: RecordFile | None = None
    # With RESULT: the status and the files it reports.
    status: ResultStatus | None = None


@dataclass
class RecordJob:
    record_id: str
    room_id: str
    biz_name: str
    requested_by: str
    record_third_id: str
    record_param_json: str
    # The job's folder, relative to the storage folder.
    folder: str
    created_at: datetime
    state: JobState = JobState.RECORDING
    event_code: int = EventCode.INITIALISED
    ended_at: datetime | None = None
    failure_code: int = 0
    failure_message: str = ""
    # Seed 002 recordResult fileType and filePath: where the files are kept once the job has ended.
    file_type: int = FILE_TYPE_LOCAL
    location: str = ""
    # By file name, in the order they were opened.
    files: dict[str, RecordFile] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state in (JobState.RECORDING, JobState.PAUSED)

    @property
    def status(self) -> ResultStatus:
        if self.state is JobState.ENDED:
            return ResultStatus.SUCCEEDED
        if self.state is JobState.FAILED:
            return ResultStatus.FAILED
        if self.state is JobState.UPLOADING:
            return ResultStatus.UPLOADING
        return ResultStatus.RECORDING

    def initialised(self) -> Transition:
        return self._apply(Transition(EventCode.INITIALISED, self.state))

    def pause(self) -> Transition:
        if self.state is not JobState.RECORDING:
            raise PAUSE_RECORD_STATE(f"the recording is {self.state.name.lower()}, not recording")
        return self._apply(Transition(EventCode.PAUSED, JobState.PAUSED))

    def resume(self) -> Transition:
        if self.state is not JobState.PAUSED:
            raise RESUME_RECORD_STATE(f"the recording is {self.state.name.lower()}, not paused")
        return self._apply(Transition(EventCode.RESUMED, JobState.RECORDING))

    def file_opened(self, file: RecordFile) -> None:
        self.files[file.name] = file

    def file_closed(self, file: RecordFile, ended_at: datetime) -> Transition:
        file.ended_at = ended_at
        self.files[file.name] = file
        return self._apply(Transition(EventCode.STREAM_RECORDED, self.state, file.feed_id, file=file))

    def delete_file(self, name: str, reason: str = "") -> Transition:
        """A finished job's file deleted through file management or by retention (its files no longer
        change); `reason` is the event's message."""
        if self.live or self.state is JobState.UPLOADING:
            raise RECORDING_BUSY(f"the recording is {self.state.name.lower()}: its files are not finished")
        file = self.files.pop(name)
        return Transition(EventCode.FILE_DELETED, self.state, file.feed_id, reason, file=file)

    def warn(self, code: EventCode, message: str, feed_id: str = "") -> Transition:
        """A warning or a failure of one feed: reported, and the job goes on."""
        return self._apply(Transition(code, self.state, feed_id, message))

    def stop(self, now: datetime, *, upload: bool = False) -> list[Transition]:
        """Ended (11); the result (99) follows at once, or once the files are uploaded."""
        if not self.live:
            raise RECORD_ENDED(f"the recording has {self.state.name.lower()} already")
        self.ended_at = now
        if upload:
            return [self._apply(Transition(EventCode.ENDED, JobState.UPLOADING))]
        return [
            self._apply(Transition(EventCode.ENDED, JobState.ENDED)),
            self._apply(Transition(EventCode.RESULT, JobState.ENDED, status=ResultStatus.SUCCEEDED)),
        ]

    def uploaded(self, file_type: int, location: str) -> list[Transition]:
        self.file_type, self.location = file_type, location
        return [self._apply(Transition(EventCode.RESULT, JobState.ENDED, status=ResultStatus.SUCCEEDED))]

    def upload_failed(self, message: str) -> list[Transition]:
        """100201 after the retries; the files stay in the local folder (fileType 1)."""
        self.failure_code = EventCode.UPLOAD_FAILED
        self.failure_message = message
        return [
            self._apply(Transition(EventCode.UPLOAD_FAILED, JobState.FAILED, message=message)),
            self._apply(Transition(EventCode.RESULT, JobState.FAILED, status=ResultStatus.FAILED)),
        ]

    def fail(self, code: EventCode, message: str, now: datetime, feed_id: str = "") -> list[Transition]:
        """A failure that ends the job; its files so far are kept and listed in the result."""
        if not self.live:
            return []
        self.ended_at = now
        self.failure_code = code
        self.failure_message = message
        return [
            self._apply(Transition(code, JobState.FAILED, feed_id, message)),
            self._apply(Transition(EventCode.RESULT, JobState.FAILED, status=ResultStatus.FAILED)),
        ]

    def open_files(self) -> list[RecordFile]:
        return [file for file in self.files.values() if file.ended_at is None]

    def result_media_type(self) -> MediaType:
        types = {file.media_type for file in self.files.values()}
        return types.pop() if len(types) == 1 else MediaType.AUDIO_VIDEO

    def record_start_ms(self) -> int:
        starts = [file.first_frame_ms for file in self.files.values() if file.first_frame_ms]
        return min(starts, default=0)

    def _apply(self, transition: Transition) -> Transition:
        self.state = transition.state
        self.event_code = transition.code
        return transition
