"""The recording job's state machine: which changes are allowed, and the event code each one reports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.core.errors import ParleyError
from services.recorder.jobs import EventCode, JobState, MediaType, RecordFile, RecordJob, ResultStatus

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def job() -> RecordJob:
    return RecordJob(
        record_id="r1",
        room_id="room",
        biz_name="biz",
        requested_by="alice",
        record_third_id="",
        record_param_json="",
        folder="biz/room/r1",
        created_at=NOW,
    )


def file(name: str, *, video: str = "vp8", audio: str = "opus", first_ms: int = 0) -> RecordFile:
    return RecordFile(
        name=name,
        path=f"biz/room/r1/{name}",
        feed_id=name,
        uid="alice",
        started_at=NOW,
        video_codec=video,
        audio_codec=audio,
        first_frame_ms=first_ms,
    )


def test_a_job_starts_recording_with_event_10_and_pauses_and_resumes() -> None:
    recording = job()
    assert recording.initialised().code is EventCode.INITIALISED
    assert (recording.state, recording.status) == (JobState.RECORDING, ResultStatus.RECORDING)
    paused = recording.pause()
    assert (paused.code, paused.state) == (EventCode.PAUSED, JobState.PAUSED)
    with pytest.raises(ParleyError) as twice:
        recording.pause()
    assert twice.value.code == -10342
    resumed = recording.resume()
    assert (resumed.code, resumed.state) == (EventCode.RESUMED, JobState.RECORDING)
    with pytest.raises(ParleyError) as again:
        recording.resume()
    assert again.value.code == -10362


def test_stopping_reports_11_then_the_result_99_and_a_stopped_job_stays_stopped() -> None:
    recording = job()
    first = file("a", first_ms=2000)
    recording.file_opened(first)
    recording.file_opened(file("b", video="", first_ms=1000))
    closed = recording.file_closed(first, NOW)
    assert (closed.code, closed.feed_id, closed.file) == (EventCode.STREAM_RECORDED, "a", first)
    assert [f.name for f in recording.open_files()] == ["b"]
    ended, result = recording.stop(NOW)
    assert (ended.code, result.code, result.status) == (
        EventCode.ENDED,
        EventCode.RESULT,
        ResultStatus.SUCCEEDED,
    )
    assert (recording.state, recording.status, recording.ended_at) == (
        JobState.ENDED,
        ResultStatus.SUCCEEDED,
        NOW,
    )
    assert recording.record_start_ms() == 1000
    # One file of audio and video, one of audio only: together they are audio and video.
    assert recording.result_media_type() is MediaType.AUDIO_VIDEO
    for change in (recording.pause, recording.resume, lambda: recording.stop(NOW)):
        with pytest.raises(ParleyError):
            change()


def test_a_fatal_failure_ends_the_job_with_its_code_then_a_failed_result() -> None:
    recording = job()
    recording.pause()
    failure, result = recording.fail(EventCode.WRITE_FAILED, "disk full", NOW, feed_id="a")
    assert (failure.code, failure.feed_id, failure.message) == (EventCode.WRITE_FAILED, "a", "disk full")
    assert (result.code, result.status) == (EventCode.RESULT, ResultStatus.FAILED)
    assert (recording.state, recording.failure_code, recording.status) == (
        JobState.FAILED,
        100106,
        ResultStatus.FAILED,
    )
    # Failing again (a second feed noticing the same disk) reports nothing more.
    assert recording.fail(EventCode.FILE_CREATE_FAILED, "again", NOW) == []
    with pytest.raises(ParleyError) as stopped:
        recording.stop(NOW)
    assert stopped.value.code == -91034


def test_a_feed_that_cannot_be_subscribed_is_reported_and_the_job_goes_on() -> None:
    recording = job()
    warning = recording.warn(EventCode.SUBSCRIBE_FAILED, "refused", feed_id="f1")
    assert (warning.code, warning.state, warning.feed_id) == (
        EventCode.SUBSCRIBE_FAILED,
        JobState.RECORDING,
        "f1",
    )
    assert recording.live and recording.event_code == 100003


def test_a_file_media_type_follows_its_tracks() -> None:
    assert file("v", audio="").media_type is MediaType.VIDEO
    assert file("a", video="").media_type is MediaType.AUDIO
    assert file("av").media_type is MediaType.AUDIO_VIDEO
