"""The recorder's jobs in a real SQLite database: the migration makes exactly the store's tables, every
transition is written with its event in the outbox, and a job a previous process left live is failed
with 100105 at start-up, its files kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from parley.recorder.v1 import recorder_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import RecorderSettings
from services.core.db import create_engine
from services.core.events import EventPublisher, create_broker
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.recorder.jobs import EventCode, JobState, RecordFile, RecordJob
from services.recorder.recorder import Recorder
from services.recorder.room_directory import RoomView
from services.recorder.store import JobStore, metadata, outbox
from services.recorder.stored_files import StoredFiles
from tests.integration.schema_drift import schema_drift

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'recorder.db'}")
    await upgrade_to_head(engine, "services.recorder")
    yield engine
    await engine.dispose()


def job_store(engine: AsyncEngine) -> JobStore:
    """The real store over the real outbox table; its relay never runs here, so staged events stay."""
    unconnected = create_broker("127.0.0.1:9", client_id="unused", tracer_provider=TracerProvider())
    return JobStore(engine, Outbox(outbox, engine, EventPublisher(unconnected, source="//parley/test")))


async def staged(engine: AsyncEngine) -> list[recorder_pb2.RecordingEvent]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.payload, outbox.c.event_key).order_by(outbox.c.id))
        events = []
        for payload, key in rows:
            event = recorder_pb2.RecordingEvent.FromString(payload)
            assert key == event.record_id
            events.append(event)
    return events


def new_job(record_id: str = "r1") -> RecordJob:
    return RecordJob(
        record_id=record_id,
        room_id="room",
        biz_name="biz",
        requested_by="alice",
        record_third_id="third",
        record_param_json='{"fileType": "webm"}',
        folder=f"biz/room/{record_id}",
        created_at=NOW,
    )


async def test_the_migration_creates_exactly_the_tables_of_the_store(engine: AsyncEngine) -> None:
    assert await schema_drift(engine, metadata, "recorder_") == []


async def test_transitions_are_stored_with_their_events(engine: AsyncEngine) -> None:
    store = job_store(engine)
    job = new_job()
    await store.create(job, job.initialised())
    file = RecordFile(name="a.webm", path="biz/room/r1/a.webm", feed_id="f1", uid="bob", started_at=NOW)
    file.video_codec, file.size_bytes, file.first_frame_ms = "vp8", 1234, 99
    job.file_opened(file)
    await store.save(job, [job.pause()])
    assert (await store.live_job_of_room("room")) == job
    await store.save(job, [job.file_closed(file, NOW), *job.stop(NOW)])

    loaded = await store.get("r1")
    assert loaded == job and loaded.state is JobState.ENDED
    assert await store.live_job_of_room("room") is None and await store.get("nope") is None
    events = await staged(engine)
    assert [e.event_code for e in events] == [10, 910001, 0, 11, 99]
    assert events[2].file.name == "a.webm" and events[2].feed_id == "f1"
    result = events[-1].record_result
    assert (result.status, result.file_type, result.file_path, result.record_start_time) == (
        2,
        1,
        "biz/room/r1",
        99,
    )
    assert [f.size_bytes for f in result.files] == [1234]
    assert all(e.record_third_id == "third" and e.biz_name == "biz" for e in events)


class NoRooms:
    async def get(self, room_id: str) -> RoomView | None:
        return None


async def test_jobs_left_live_by_a_previous_process_fail_with_100105(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    store = job_store(engine)
    job = new_job("r2")
    await store.create(job, job.initialised())
    (tmp_path / "biz" / "room" / "r2").mkdir(parents=True)
    (tmp_path / "biz" / "room" / "r2" / "a.webm").write_bytes(b"x" * 10)
    job.file_opened(
        RecordFile(name="a.webm", path="biz/room/r2/a.webm", feed_id="f", uid="u", started_at=NOW)
    )
    await store.save(job, [])

    recorder = Recorder(store, NoRooms(), lambda address: None, RecorderSettings(), tmp_path)  # type: ignore[arg-type,return-value]
    await recorder.recover()

    recovered = await store.get("r2")
    assert recovered is not None
    assert (recovered.state, recovered.failure_code) == (JobState.FAILED, EventCode.PROCESS_CRASHED)
    [kept] = recovered.files.values()
    assert kept.size_bytes == 10 and kept.ended_at is not None
    assert [e.event_code for e in await staged(engine)] == [10, 100105, 99]
    assert await store.live_jobs() == []


async def finished_job(
    store: JobStore, storage: Path, record_id: str, biz_name: str, age_days: float
) -> Path:
    """A stopped job of `biz_name` that started `age_days` before NOW, with one file on disk."""
    job = new_job(record_id)
    job.biz_name, job.folder = biz_name, f"{biz_name}/room/{record_id}"
    job.created_at = NOW - timedelta(days=age_days)
    await store.create(job, job.initialised())
    path = storage / job.folder / "a.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 10)
    file = RecordFile(name="a.mp4", path=f"{job.folder}/a.mp4", feed_id="", uid="", started_at=job.created_at)
    job.file_opened(file)
    await store.save(job, [job.file_closed(file, job.created_at), *job.stop(job.created_at)])
    return path


async def test_retention_deletes_files_older_than_the_apps_own_or_the_global_days(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    store = job_store(engine)
    storage = tmp_path / "recordings"
    paths = {
        record_id: await finished_job(store, storage, record_id, biz, age)
        for record_id, biz, age in [
            ("old", "biz", 40),
            ("young", "biz", 10),
            ("kept_long", "archive", 400),
            ("short_lived", "brief", 3),
            ("fresh", "brief", 1),
        ]
    }
    settings = RecorderSettings(retention_days=30, app_retention_days="archive=0, brief=2")
    files = StoredFiles(store, settings, storage)
    assert await files.expire(NOW) == 2
    gone = {record_id for record_id, path in paths.items() if not path.exists()}
    assert gone == {"old", "short_lived"}
    for record_id in ("old", "short_lived"):
        job = await store.get(record_id)
        assert job is not None and job.files == {}
    deletions = [e for e in await staged(engine) if e.event_code == EventCode.FILE_DELETED]
    assert sorted(e.record_id for e in deletions) == ["old", "short_lived"]
    assert all(e.file.name == "a.mp4" and "retention" in e.message for e in deletions)
    assert await files.expire(NOW) == 0


def test_an_app_retention_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(ValueError, match="bizName=days"):
        RecorderSettings(app_retention_days="archive:30")
