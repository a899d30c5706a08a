"""The recorder's tables and the one way jobs are written: a job's row, its files and the events of its
transitions in one transaction (the transactional outbox, services/core/outbox.py), committed before the
caller answers. `migrations/versions/` creates exactly these tables.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from services.core.db import UtcDateTime
from services.core.outbox import Outbox, outbox_table
from services.core.topics import Topic
from services.recorder.jobs import JobState, RecordFile, RecordJob, Transition
from services.recorder.messages import recording_event

metadata = MetaData()

ID = 64
NAME = 255
PATH = 1024


jobs = Table(
    "recorder_jobs",
    metadata,
    Column("record_id", String(ID), primary_key=True),
    Column("room_id", String(ID), nullable=False, index=True),
    Column("biz_name", String(ID), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("record_third_id", String(NAME), nullable=False),
    Column("record_param_json", Text, nullable=False),
    Column("folder", String(PATH), nullable=False),
    # jobs.JobState.
    Column("state", SmallInteger, nullable=False, index=True),
    Column("event_code", Integer, nullable=False),
    Column("failure_code", Integer, nullable=False),
    Column("failure_message", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    # Seed 002 recordResult fileType / filePath once the files are kept (migration 0002).
    Column("file_type", SmallInteger, nullable=False, server_default="1"),
    Column("location", String(PATH), nullable=False, server_default=""),
)

files = Table(
    "recorder_files",
    metadata,
    Column("record_id", String(ID), ForeignKey("recorder_jobs.record_id"), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("path", String(PATH), nullable=False),
    Column("feed_id", String(ID), nullable=False),
    Column("uid", String(128), nullable=False),
    Column("video_codec", String(32), nullable=False),
    Column("audio_codec", String(32), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
    Column("video_packets", BigInteger, nullable=False),
    Column("audio_packets", BigInteger, nullable=False),
    Column("first_frame_ms", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    # File management's id (migration 0002).
    Column("file_id", String(NAME), nullable=False, unique=True),
)

outbox = outbox_table(metadata, "recorder_outbox")

LIVE_STATES = (int(JobState.RECORDING), int(JobState.PAUSED))


def _job_values(job: RecordJob) -> dict[str, Any]:
    return {
        "room_id": job.room_id,
        "biz_name": job.biz_name,
        "requested_by": job.requested_by,
        "record_third_id": job.record_third_id,
        "record_param_json": job.record_param_json,
        "folder": job.folder,
        "state": int(job.state),
        "event_code": int(job.event_code),
        "failure_code": job.failure_code,
        "failure_message": job.failure_message,
        "created_at": job.created_at,
        "ended_at": job.ended_at,
        "file_type": job.file_type,
        "location": job.location,
    }


def _file_values(file: RecordFile) -> dict[str, Any]:
    return {
        "path": file.path,
        "feed_id": file.feed_id,
        "uid": file.uid,
        "video_codec": file.video_codec,
        "audio_codec": file.audio_codec,
        "size_bytes": file.size_bytes,
        "duration_ms": file.duration_ms,
        "video_packets": file.video_packets,
        "audio_packets": file.audio_packets,
        "first_frame_ms": file.first_frame_ms,
        "started_at": file.started_at,
        "ended_at": file.ended_at,
        "file_id": file.file_id,
    }


def _file(row: Row[Any]) -> RecordFile:
    return RecordFile(
        name=row.name,
        path=row.path,
        feed_id=row.feed_id,
        uid=row.uid,
        started_at=row.started_at,
        video_codec=row.video_codec,
        audio_codec=row.audio_codec,
        size_bytes=row.size_bytes,
        duration_ms=row.duration_ms,
        video_packets=row.video_packets,
        audio_packets=row.audio_packets,
        first_frame_ms=row.first_frame_ms,
        ended_at=row.ended_at,
        file_id=row.file_id,
    )


def _job(row: Row[Any], file_rows: list[Row[Any]]) -> RecordJob:
    job = RecordJob(
        record_id=row.record_id,
        room_id=row.room_id,
        biz_name=row.biz_name,
        requested_by=row.requested_by,
        record_third_id=row.record_third_id,
        record_param_json=row.record_param_json,
        folder=row.folder,
        created_at=row.created_at,
        state=JobState(row.state),
        event_code=row.event_code,
        ended_at=row.ended_at,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        file_type=row.file_type,
        location=row.location,
    )
    for file_row in file_rows:
        job.files[file_row.name] = _file(file_row)
    return job


class JobStore:
    def __init__(self, engine: AsyncEngine, events: Outbox) -> None:
        self._engine = engine
        self._outbox = events

    async def create(self, job: RecordJob, transition: Transition) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(jobs.insert().values(record_id=job.record_id, **_job_values(job)))
            await self._stage(connection, job, [transition])
        self._outbox.notify()

    async def save(self, job: RecordJob, transitions: list[Transition]) -> None:
        """The job's row and files as they are now, and the events of `transitions`, at once."""
        async with self._engine.begin() as connection:
            await connection.execute(
                jobs.update().where(jobs.c.record_id == job.record_id).values(**_job_values(job))
            )
            stored = set(
                (
                    await connection.execute(select(files.c.name).where(files.c.record_id == job.record_id))
                ).scalars()
            )
            # A copy: while this waits on the database, a capture that starts may add its file to the job.
            for file in list(job.files.values()):
                if file.name in stored:
                    await connection.execute(
                        files.update()
                        .where(files.c.record_id == job.record_id, files.c.name == file.name)
                        .values(**_file_values(file))
                    )
                else:
                    await connection.execute(
                        files.insert().values(record_id=job.record_id, name=file.name, **_file_values(file))
                    )
            await self._stage(connection, job, transitions)
        if transitions:
            self._outbox.notify()

    async def get(self, record_id: str) -> RecordJob | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(jobs).where(jobs.c.record_id == record_id))).first()
            if row is None:
                return None
            return _job(row, await self._files_of(connection, record_id))

    async def live_job_of_room(self, room_id: str) -> RecordJob | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(jobs).where(jobs.c.room_id == room_id, jobs.c.state.in_(LIVE_STATES))
                )
            ).first()
            if row is None:
                return None
            return _job(row, await self._files_of(connection, row.record_id))

    async def delete_file(self, job: RecordJob, name: str, transition: Transition) -> None:
        """The file's row gone and its event staged, at once."""
        async with self._engine.begin() as connection:
            await connection.execute(
                files.delete().where(files.c.record_id == job.record_id, files.c.name == name)
            )
            await connection.execute(
                jobs.update().where(jobs.c.record_id == job.record_id).values(**_job_values(job))
            )
            await self._stage(connection, job, [transition])
        self._outbox.notify()

    async def job_of_file(self, file_id: str) -> tuple[RecordJob, str] | None:
        """The job a file belongs to, and the file's name."""
        async with self._engine.connect() as connection:
            name = (
                await connection.execute(
                    select(files.c.record_id, files.c.name).where(files.c.file_id == file_id)
                )
            ).first()
        if name is None:
            return None
        job = await self.get(name.record_id)
        return (job, name.name) if job is not None else None

    async def finished_files(
        self,
        biz_name: str | None,
        *,
        start: datetime | None,
        end: datetime | None,
        record_id: str,
        offset: int,
        limit: int,
        other_than: Collection[str] = (),
    ) -> tuple[list[tuple[RecordJob, RecordFile]], int]:
        """An app's finished files (newest first) whose recording started in [start, end), a page of them
        and how many there are; `biz_name` None: every app's but those `other_than` names."""
        conditions: list[ColumnElement[bool]] = [files.c.ended_at.is_not(None)]
        if biz_name is not None:
            conditions.append(jobs.c.biz_name == biz_name)
        if other_than:
            conditions.append(jobs.c.biz_name.not_in(list(other_than)))
        conditions.append(jobs.c.state.in_((int(JobState.ENDED), int(JobState.FAILED))))
        if start is not None:
            conditions.append(jobs.c.created_at >= start)
        if end is not None:
            conditions.append(jobs.c.created_at < end)
        if record_id:
            conditions.append(jobs.c.record_id == record_id)
        joined = files.join(jobs, files.c.record_id == jobs.c.record_id)
        async with self._engine.connect() as connection:
            total = (
                await connection.execute(select(func.count()).select_from(joined).where(*conditions))
            ).scalar_one()
            rows = (
                await connection.execute(
                    select(files.c.record_id, files.c.name)
                    .select_from(joined)
                    .where(*conditions)
                    .order_by(jobs.c.created_at.desc(), files.c.name)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
            page: list[tuple[RecordJob, RecordFile]] = []
            loaded: dict[str, RecordJob] = {}
            for row in rows:
                if row.record_id not in loaded:
                    job_row = (
                        await connection.execute(select(jobs).where(jobs.c.record_id == row.record_id))
                    ).one()
                    loaded[row.record_id] = _job(job_row, await self._files_of(connection, row.record_id))
                job = loaded[row.record_id]
                page.append((job, job.files[row.name]))
        return page, int(total)

    async def live_jobs(self) -> list[RecordJob]:
        return await self._jobs_in(LIVE_STATES)

    async def uploading_jobs(self) -> list[RecordJob]:
        return await self._jobs_in((int(JobState.UPLOADING),))

    async def _jobs_in(self, states: tuple[int, ...]) -> list[RecordJob]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(jobs).where(jobs.c.state.in_(states)))).all()
            return [_job(row, await self._files_of(connection, row.record_id)) for row in rows]

    @staticmethod
    async def _files_of(connection: AsyncConnection, record_id: str) -> list[Row[Any]]:
        return list((await connection.execute(select(files).where(files.c.record_id == record_id))).all())

    async def _stage(
        self, connection: AsyncConnection, job: RecordJob, transitions: list[Transition]
    ) -> None:
        for transition in transitions:
            await self._outbox.stage(
                connection, Topic.RECORDING, recording_event(job, transition), key=job.record_id
            )
