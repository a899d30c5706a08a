"""Errors of the recorder's API, with seed 002's server-recording codes where the seed names the situation.

Seed 002 gives each client call of server recording its own codes (StartRemoteRecord -10311 ...,
PauseRemoteRecord -10341..-10343, ResumeRemoteRecord -10361..-10363,
GetRecordInfo -10351..-10353); the -20301..-20308 codes are browser (client-side) recording and are not
used. What the seed has no code for takes Parley's own, -9103x (next to the room manager's -910xx).

| code   | reason                | when                                                 | source             |
| ------ | --------------------- | ---------------------------------------------------- | ------------------ |
| -10311 | START_FAILED          | recording could not start (room manager unreachable) | StartRemoteRecord  |
| -10341 | PAUSE_ROOM_STATE      | pause by someone who is not in the job's room        | PauseRemoteRecord  |
| -10342 | PAUSE_RECORD_STATE    | pause of a job that is not recording                 | PauseRemoteRecord  |
| -10361 | RESUME_ROOM_STATE     | resume by someone who is not in the job's room       | ResumeRemoteRecord |
| -10362 | RESUME_RECORD_STATE   | resume of a job that is not paused                   | ResumeRemoteRecord |
| -10353 | RECORD_INFO_PARAMS    | get_record_info without a record_id                  | GetRecordInfo      |
| -10381 | WATERMARK_FAILED      | watermark change of a single-file job, bad overlaps  | ChangeRemote...    |
| -91030 | RECORD_UNKNOWN        | no such recording (or one of another app)            | Parley             |
| -91031 | RECORD_ROOM_NOT_FOUND | no such room to record (or another app's)            | Parley             |
| -91032 | ALREADY_RECORDING     | the room has a recording that has not ended          | Parley             |
| -91033 | RECORD_NOT_IN_ROOM    | start/stop by someone who is not in the room         | Parley             |
| -91034 | RECORD_ENDED          | stop/pause/resume of a job that has ended or failed  | Parley             |
| -91035 | RECORD_PARAM_INVALID  | recordParam or file_path is not acceptable           | Parley             |
| -91036 | RECORD_FILE_UNKNOWN   | no such recording file (or one of another app)       | Parley             |
| -91037 | RECORDING_BUSY        | delete of a file its recording is still writing      | Parley             |
| -91038 | RECORD_STORAGE_FAILED | the storage refused a read or a delete               | Parley             |

START_FAILED, whose code the room manager reports too, is in `services.core.shared_errors`.
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

# 002 PauseRemoteRecord: -10341 "房间状态错误", -10342 "录制状态错误".
PAUSE_ROOM_STATE = ErrorKind(
    -10341, "PAUSE_ROOM_STATE", _Status.PERMISSION_DENIED, "only a participant of the room may pause"
)
PAUSE_RECORD_STATE = ErrorKind(
    -10342, "PAUSE_RECORD_STATE", _Status.FAILED_PRECONDITION, "the recording is not recording"
)
# 002 ResumeRemoteRecord: -10361 "房间状态错误", -10362 "录制状态错误".
RESUME_ROOM_STATE = ErrorKind(
    -10361, "RESUME_ROOM_STATE", _Status.PERMISSION_DENIED, "only a participant of the room may resume"
)
RESUME_RECORD_STATE = ErrorKind(
    -10362, "RESUME_RECORD_STATE", _Status.FAILED_PRECONDITION, "the recording is not paused"
)
# 002 GetRecordInfo: -10353 "请求参数错误".
RECORD_INFO_PARAMS = ErrorKind(
    -10353, "RECORD_INFO_PARAMS", _Status.INVALID_ARGUMENT, "record_id is required"
)
# 002 ChangeRemoteRecordWatermark: -10381 "变更服务端录制水印失败".
WATERMARK_FAILED = ErrorKind(
    -10381, "WATERMARK_FAILED", _Status.FAILED_PRECONDITION, "the watermark could not be changed"
)

# Parley's own: situations the seed has no code for.
RECORD_UNKNOWN = ErrorKind(-91030, "RECORD_UNKNOWN", _Status.NOT_FOUND, "no such recording")
RECORD_ROOM_NOT_FOUND = ErrorKind(-91031, "RECORD_ROOM_NOT_FOUND", _Status.NOT_FOUND, "no such room")
ALREADY_RECORDING = ErrorKind(
    -91032, "ALREADY_RECORDING", _Status.ALREADY_EXISTS, "the room is being recorded already"
)
RECORD_NOT_IN_ROOM = ErrorKind(
    -91033, "RECORD_NOT_IN_ROOM", _Status.PERMISSION_DENIED, "only a participant of the room may do that"
)
RECORD_ENDED = ErrorKind(-91034, "RECORD_ENDED", _Status.FAILED_PRECONDITION, "the recording has ended")
RECORD_PARAM_INVALID = ErrorKind(
    -91035, "RECORD_PARAM_INVALID", _Status.INVALID_ARGUMENT, "invalid recording parameters"
)
RECORD_FILE_UNKNOWN = ErrorKind(-91036, "RECORD_FILE_UNKNOWN", _Status.NOT_FOUND, "no such recording file")
RECORDING_BUSY = ErrorKind(
    -91037, "RECORDING_BUSY", _Status.FAILED_PRECONDITION, "the recording is still writing its files"
)
RECORD_STORAGE_FAILED = ErrorKind(
    -91038, "RECORD_STORAGE_FAILED", _Status.UNAVAILABLE, "the recording storage did not answer"
)
