"""The files of recordings that have ended, in the storage folder or the object store: listed, read and
deleted for their app (seed 002 5.2 录制文件管理), uploaded to the object store once their job stops, and
deleted when their app's retention has passed. Each change is stored with its event (store.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from services.core.config import RecorderSettings
from services.core.errors import ParleyError
from services.recorder.errors import RECORD_FILE_UNKNOWN, RECORD_STORAGE_FAILED, RECORDING_BUSY
from services.recorder.jobs import FILE_TYPE_LOCAL, JobState, RecordFile, RecordJob
from services.recorder.storage import FileMissing, LocalStorage, Storage, StorageFailed
from services.recorder.store import JobStore

log = structlog.get_logger(__name__)

# File management pages and reads.
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_READ = 1 << 20


class StoredFiles:
    def __init__(
        self, store: JobStore, settings: RecorderSettings, storage_dir: Path, storage: Storage | None = None
    ) -> None:
        self._store = store
        self._settings = settings
        self._storage_dir = storage_dir
        self._local = LocalStorage(storage_dir)
        self._storage = storage or self._local

    @property
    def uploads(self) -> bool:
        """Whether a stopped job's files go on to the object store (the job is UPLOADING until then)."""
        return self._storage.file_type != FILE_TYPE_LOCAL

    async def upload(self, job: RecordJob) -> None:
        """Keep a stopped job's files in the object store: the result (99), or 100201 after the
        retries (the files stay in the local folder)."""
        try:
            for file in job.files.values():
                await self._storage.keep(self._storage_dir / file.path, file.path)
        except StorageFailed as error:
            transitions = job.upload_failed(str(error))
            log.warning("recording_upload_failed", record_id=job.record_id, msg=str(error))
        else:
            transitions = job.uploaded(self._storage.file_type, self._storage.location(job.folder))
        await self._store.save(job, transitions)

    async def list_files(
        self, biz_name: str, *, start_ms: int, end_ms: int, record_id: str, offset: int, limit: int
    ) -> tuple[list[tuple[RecordJob, RecordFile]], int]:
        """An app's finished files whose recording started in [start_ms, end_ms), newest first."""
        return await self._store.finished_files(
            biz_name,
            start=datetime.fromtimestamp(start_ms / 1000, UTC) if start_ms else None,
            end=datetime.fromtimestamp(end_ms / 1000, UTC) if end_ms else None,
            record_id=record_id,
            offset=max(0, offset),
            limit=min(max(limit, 1), MAX_PAGE) if limit else DEFAULT_PAGE,
        )

    async def file(self, biz_name: str, file_id: str) -> tuple[RecordJob, RecordFile]:
        found = await self._store.job_of_file(file_id) if file_id else None
        if found is None or (biz_name and found[0].biz_name != biz_name):
            raise RECORD_FILE_UNKNOWN(f"no recording file {file_id}")
        job, name = found
        return job, job.files[name]

    def location_of(self, job: RecordJob, file: RecordFile) -> str:
        """recordResult filePath of one file: its path in the storage folder, or its URL in the store."""
        return self._storage_of(job).location(file.path)

    async def read_file(self, biz_name: str, file_id: str, offset: int, length: int) -> bytes:
        job, file = await self.file(biz_name, file_id)
        if file.ended_at is None or job.live or job.state is JobState.UPLOADING:
            raise RECORDING_BUSY(f"the recording is {job.state.name.lower()}: the file is not finished")
        end = offset + min(max(length, 0), MAX_READ)
        try:
            return await self._storage_of(job).read(file.path, max(0, offset), end)
        except FileMissing:
            raise RECORD_FILE_UNKNOWN(f"recording file {file_id} is not in storage") from None
        except StorageFailed as error:
            raise RECORD_STORAGE_FAILED(str(error)) from None

    async def delete_files(self, biz_name: str, file_ids: list[str]) -> list[str]:
        """Each file gone from storage and listing, with its event (910003); every id is checked before
        any file is deleted."""
        found = [await self.file(biz_name, file_id) for file_id in dict.fromkeys(file_ids)]
        for job, _ in found:
            if job.live or job.state is JobState.UPLOADING:
                raise RECORDING_BUSY(f"recording {job.record_id} is {job.state.name.lower()}")
        for job, file in found:
            await self._delete(job, file, "")
        return [file.file_id for _, file in found]

    async def _delete(self, job: RecordJob, file: RecordFile, reason: str) -> None:
        try:
            await self._storage_of(job).delete(file.path)
        except StorageFailed as error:
            raise RECORD_STORAGE_FAILED(str(error)) from None
        await self._store.delete_file(job, file.name, job.delete_file(file.name, reason))
        log.info("recording_file_deleted", record_id=job.record_id, file_id=file.file_id, reason=reason)

    # Retention

    async def expire(self, now: datetime) -> int:
        """Delete the finished files of recordings that started before their app's retention (the
        global one, or the app's own), each with its event 910003; how many were deleted."""
        by_app = self._settings.retention_by_app()
        deleted = 0
        for biz_name, days in by_app.items():
            deleted += await self._expire_older(biz_name, days, now, other_than=())
        deleted += await self._expire_older(None, self._settings.retention_days, now, other_than=by_app)
        return deleted

    async def _expire_older(
        self, biz_name: str | None, days: float, now: datetime, *, other_than: Collection[str]
    ) -> int:
        if not days:
            return 0
        cutoff = now - timedelta(days=days)
        reason = f"retention: the recording started more than {days:g} days ago"
        deleted = 0
        while True:
            page, _ = await self._store.finished_files(
                biz_name,
                start=None,
                end=cutoff,
                record_id="",
                offset=0,
                limit=MAX_PAGE,
                other_than=other_than,
            )
            if not page:
                return deleted
            for job, file in page:
                await self._delete(job, file, reason)
                deleted += 1

    async def keep_retention(self) -> None:
        """Expire files every `retention_interval_s` until cancelled; a storage that fails is tried
        again at the next pass."""
        while True:
            try:
                deleted = await self.expire(datetime.now(UTC))
                if deleted:
                    log.info("recording_retention", deleted=deleted)
            except ParleyError as error:
                log.warning("recording_retention_failed", code=error.code, msg=error.message)
            await asyncio.sleep(self._settings.retention_interval_s)

    def _storage_of(self, job: RecordJob) -> Storage:
        """Where the job's files are: the object store once uploaded there, else the storage folder."""
        return self._storage if job.file_type == self._storage.file_type else self._local
