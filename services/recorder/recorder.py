"""The recorder's work: recording jobs (jobs.py) stored with their events (store.py), and for each live
job one capture per feed of its room (capture.py).

Every change is stored, with its event, before it is answered or acted on further. Media state (peer
connections, open files) is in memory only while a job is live; a job found live at start-up lost its
media with the previous process and is failed with 100105, its files kept as far as they were written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

import structlog
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub

from services.core.config import RecorderSettings
from services.core.errors import ErrorKind, ParleyError
from services.core.shared_errors import START_FAILED
from services.core.ssrf import TargetGuard
from services.recorder.capture import FeedCapture, FeedSource, FileCreateFailed, FrameSink, SubscribeFailed
from services.recorder.compositor import Compositor, CompositorFailed, SplitFile
from services.recorder.errors import (
    ALREADY_RECORDING,
    PAUSE_ROOM_STATE,
    RECORD_ENDED,
    RECORD_FILE_UNKNOWN,
    RECORD_NOT_IN_ROOM,
    RECORD_PARAM_INVALID,
    RECORD_ROOM_NOT_FOUND,
    RECORD_STORAGE_FAILED,
    RECORD_UNKNOWN,
    RECORDING_BUSY,
    RESUME_ROOM_STATE,
    WATERMARK_FAILED,
)
from services.recorder.files import FORMATS, FeedFile, WriteFailed
from services.recorder.health import FeedHealth, HealthRules, StorageHealth
from services.recorder.images import ImageFetcher
from services.recorder.jobs import FILE_TYPE_LOCAL, EventCode, JobState, RecordFile, RecordJob, Transition
from services.recorder.layout import in_layout
from services.recorder.params import Mode, RecordOptions, check_folder, parse_overlaps, parse_record_param
from services.recorder.storage import FileMissing, LocalStorage, Storage, StorageFailed
from services.recorder.store import JobStore

log = structlog.get_logger(__name__)

# File management pages and reads.
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_READ = 1 << 20
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class RoomView:
    """What the recorder needs of a room, from the room manager's GetRoom."""

    room_id: str
    biz_name: str
    relay_address: str
    participants: frozenset[str]
    feeds: tuple[FeedSource, ...]


class RoomDirectory(Protocol):
    async def get(self, room_id: str) -> RoomView | None:
        """The live room, None when there is none; raises ParleyError when the room manager fails."""
        ...


RelayStubs = Callable[[str], RelayServiceStub]


@dataclass
class LiveJob:
    job: RecordJob
    options: RecordOptions
    captures: dict[str, FeedCapture] = field(default_factory=dict)
    # Composite mode: the job's one file, composed on its own thread.
    compositor: Compositor | None = None
    # Every feed a capture was started for: a feed is recorded once, however often it is announced (the
    # room's answer at start and its FeedPublished fact may both name it, and a fact may come late).
    feeds_seen: set[str] = field(default_factory=set)
    # One change of the job at a time: captures start and end concurrently with stop/pause/resume.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The warnings' state of each connected feed, by feed_id (services/recorder/health.py).
    health: dict[str, FeedHealth] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def safe_name(text: str) -> str:
    return _UNSAFE_NAME.sub("_", text)[:64] or "_"


def job_folder(file_path: str, biz_name: str, room_id: str, record_id: str) -> str:
    """The job's folder relative to the storage folder: the caller's file_path (seed 002), then
    <bizName>/<roomId>/<recordId>."""
    prefix = PurePosixPath(file_path) if file_path else PurePosixPath()
    return str(prefix / safe_name(biz_name) / safe_name(room_id) / record_id)


class Recorder:
    def __init__(
        self,
        store: JobStore,
        rooms: RoomDirectory,
        relays: RelayStubs,
        settings: RecorderSettings,
        storage_dir: Path,
        storage: Storage | None = None,
    ) -> None:
        self._store = store
        self._local = LocalStorage(storage_dir)
        self._storage = storage or self._local
        self._rooms = rooms
        self._relays = relays
        self._settings = settings
        self._storage_dir = storage_dir
        self._live: dict[str, LiveJob] = {}
        self._starting = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._images = ImageFetcher(
            TargetGuard(settings.image_allowed_networks()),
            timeout_s=settings.image_fetch_timeout_s,
            max_bytes=settings.image_max_bytes,
        )
        self._health_rules = HealthRules(
            stall_s=settings.stall_warning_s,
            low_fps=settings.low_frame_rate_fps,
            window_s=settings.frame_rate_window_s,
            min_free_bytes=settings.low_disk_warning_bytes,
        )

    @property
    def live_jobs(self) -> int:
        return len(self._live)

    # Jobs

    async def recover(self) -> None:
        """Fail the jobs the previous process left live: their media went with it (seed 002 100105)."""
        for job in await self._store.live_jobs():
            now = _now()
            for file in job.open_files():
                file.size_bytes = self._size_of(file)
                file.ended_at = now
            transitions = job.fail(EventCode.PROCESS_CRASHED, "the recorder stopped while recording", now)
            await self._store.save(job, transitions)
            log.warning("recording_lost", record_id=job.record_id, room_id=job.room_id)
        # Stopped jobs whose upload the previous process did not finish: their files are complete.
        for job in await self._store.uploading_jobs():
            self._spawn(self._upload(job))

    async def _upload(self, job: RecordJob) -> None:
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

    async def start(
        self,
        *,
        room_id: str,
        biz_name: str,
        uid: str,
        record_param_json: str,
        record_third_id: str,
        file_path: str,
    ) -> RecordJob:
        options = parse_record_param(record_param_json)
        check_folder(file_path, "file_path")
        if options.mode is Mode.COMPOSITE:
            overlays = await self._images.fetched(options.overlays, RECORD_PARAM_INVALID)
            options = dataclasses.replace(options, overlays=overlays)
        try:
            room = await self._rooms.get(room_id)
        except ParleyError as error:
            raise START_FAILED(f"the room manager did not answer: {error.message}") from None
        if room is None or (biz_name and room.biz_name != biz_name):
            raise RECORD_ROOM_NOT_FOUND(f"room {room_id} does not exist")
        if uid and uid not in room.participants:
            raise RECORD_NOT_IN_ROOM(f"{uid} is not in room {room_id}")
        async with self._starting:
            # The database too: a recorder sharing it with another may have the room's live job.
            recording = any(live.job.room_id == room_id for live in self._live.values())
            if recording or await self._store.live_job_of_room(room_id) is not None:
                raise ALREADY_RECORDING(f"room {room_id} is being recorded already")
            record_id = f"r{secrets.token_hex(8)}"
            job = RecordJob(
                record_id=record_id,
                room_id=room_id,
                biz_name=room.biz_name,
                requested_by=uid,
                record_third_id=record_third_id,
                record_param_json=record_param_json,
                folder=job_folder(file_path, room.biz_name, room_id, record_id),
                created_at=_now(),
            )
            await self._store.create(job, job.initialised())
            live = self._live[record_id] = LiveJob(job, options)
        log.info("recording_started", record_id=record_id, room_id=room_id, feeds=len(room.feeds))
        if options.mode is Mode.COMPOSITE:
            self._start_compositor(live)
            if live.compositor is not None:
                # Stored now: a recorder that dies before the first feed is in still lists the file.
                self._composite_files(job, live.compositor)
                await self._store.save(job, [])
        if options.record_total_stream:
            self._spawn(self._check_streams(live))
        self._spawn(self._watch(live))
        for feed in room.feeds:
            self._spawn(self._add_feed(live, feed, room.relay_address))
        return job

    async def stop(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        job = await self._job(record_id, biz_name)
        await self._check_participant(job, uid, RECORD_NOT_IN_ROOM)
        live = self._live.get(record_id)
        if live is None:
            raise RECORD_ENDED(f"the recording has {job.state.name.lower()} already")
        async with live.lock:
            if not live.job.live:
                raise RECORD_ENDED(f"the recording has {live.job.state.name.lower()} already")
            # The composite first: its last pictures still show every feed.
            transitions = await self._close_compositor(live)
            transitions += await self._close_captures(live, live.captures.values())
            upload = self._storage.file_type != FILE_TYPE_LOCAL and bool(live.job.files)
            if live.job.live:
                transitions += live.job.stop(_now(), upload=upload)
            self._forget(live)
            await self._store.save(live.job, transitions)
        if live.job.state is JobState.UPLOADING:
            self._spawn(self._upload(live.job))
        log.info("recording_stopped", record_id=record_id, files=len(live.job.files))
        return live.job

    async def pause(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, PAUSE_ROOM_STATE)
        async with live.lock:
            transition = live.job.pause()
            if live.compositor is not None:
                live.compositor.pause()
            for capture in live.captures.values():
                capture.pause()
            await self._store.save(live.job, [transition])
        return live.job

    async def resume(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, RESUME_ROOM_STATE)
        async with live.lock:
            transition = live.job.resume()
            if live.compositor is not None:
                live.compositor.resume()
            for capture in live.captures.values():
                capture.resume()
            await self._store.save(live.job, [transition])
        return live.job

    async def info(self, record_id: str, *, biz_name: str = "") -> RecordJob:
        live = self._live.get(record_id)
        if live is not None and (not biz_name or live.job.biz_name == biz_name):
            for capture in live.captures.values():
                # A capture still negotiating with its relay has no file yet.
                self._update_files(live.job, capture)
            if live.compositor is not None:
                self._composite_files(live.job, live.compositor)
            return live.job
        return await self._job(record_id, biz_name)

    async def change_watermark(
        self, record_id: str, overlaps_json: str, *, biz_name: str = "", uid: str = ""
    ) -> RecordJob:
        """Seed 002 ChangeRemoteRecordWatermark: the composite's watermarks from the next picture on;
        -10381 when the job has no picture to mark or the overlaps are not acceptable."""
        live = await self._live_job(record_id, biz_name, uid, RECORD_NOT_IN_ROOM)
        if live.compositor is None:
            raise WATERMARK_FAILED("watermarks are drawn on composite recordings only")
        try:
            overlays = parse_overlaps(json.loads(overlaps_json or "[]"))
        except (ParleyError, json.JSONDecodeError) as error:
            raise WATERMARK_FAILED(f"overlaps not acceptable: {getattr(error, 'message', error)}") from None
        overlays = await self._images.fetched(overlays, WATERMARK_FAILED)
        live.compositor.set_overlays(overlays)
        log.info("recording_watermark_changed", record_id=record_id, overlays=len(overlays))
        return live.job

    # File management (seed 002 5.2 录制文件管理)

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
                deleted = await self.expire(_now())
                if deleted:
                    log.info("recording_retention", deleted=deleted)
            except ParleyError as error:
                log.warning("recording_retention_failed", code=error.code, msg=error.message)
            await asyncio.sleep(self._settings.retention_interval_s)

    def _storage_of(self, job: RecordJob) -> Storage:
        return self._storage if job.file_type == self._storage.file_type else self._local

    async def shutdown(self) -> None:
        """Stop every live job as if asked (their files complete), then wait for what is in flight."""
        for record_id in list(self._live):
            try:
                await self.stop(record_id)
            except Exception:
                log.exception("recording_stop_failed", record_id=record_id)
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=self._settings.connect_timeout_s)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await self._images.close()

    # Facts of the room manager (parley.feed.v1, parley.room.v1)

    async def feed_published(self, room_id: str, feed: FeedSource) -> None:
        jobs = [live for live in self._live.values() if live.job.room_id == room_id]
        if not jobs:
            return
        room = await self._rooms.get(room_id)
        if room is None:
            return
        for live in jobs:
            self._spawn(self._add_feed(live, feed, room.relay_address))

    async def feed_unpublished(self, room_id: str, feed_id: str) -> None:
        for live in list(self._live.values()):
            capture = live.captures.get(feed_id)
            if live.job.room_id == room_id and capture is not None:
                await self._feed_ended(live, capture)

    async def participant_left(self, room_id: str, uid: str) -> None:
        """Seed 002 endType 0 (the default): a recording ends when the participant who started it leaves."""
        for live in list(self._live.values()):
            job = live.job
            if job.room_id == room_id and job.requested_by == uid and live.options.end_type == 0:
                log.info("recording_caller_left", record_id=job.record_id, uid=uid)
                try:
                    await self.stop(job.record_id)
                except Exception:
                    log.exception("recording_stop_failed", record_id=job.record_id)

    async def room_destroyed(self, room_id: str) -> None:
        for live in list(self._live.values()):
            if live.job.room_id == room_id:
                try:
                    await self.stop(live.job.record_id)
                except Exception:
                    log.exception("recording_stop_failed", record_id=live.job.record_id)

    # Captures

    async def _add_feed(self, live: LiveJob, feed: FeedSource, relay_address: str) -> None:
        job = live.job
        async with live.lock:
            if not job.live or feed.feed_id in live.feeds_seen or not relay_address:
                return
            live.feeds_seen.add(feed.feed_id)
            options = live.options
            if not feed.tag.startswith(options.tag_filter):
                # Seed 002 tagFilter: only feeds whose tag has that prefix are recorded.
                return
            if live.compositor is not None and not in_layout(feed.tag, options):
                message = f"the layout has no place for tag {feed.tag!r}: the stream is not recorded"
                await self._store.save(job, [job.warn(EventCode.TOO_MANY_MIXED, message, feed.feed_id)])
                return
            kinds = tuple(k for k in feed.kinds if options.wants(k) or k == options.split_kind())
            if not kinds:
                # The recording keeps nothing this feed has (an audio-only feed in a video-only file).
                return
            capture = FeedCapture(
                feed,
                room_id=job.room_id,
                biz_name=job.biz_name,
                relay=self._relays(relay_address),
                kinds=kinds,
                make_sinks=lambda video, audio: self._sinks(live, feed, video, audio),
                listen_address=self._settings.listen_address,
                rpc_timeout_s=self._settings.rpc_timeout_s,
                connect_timeout_s=self._settings.connect_timeout_s,
                on_end=lambda ended: self._spawn(self._feed_ended(live, ended)),
                on_write_failed=lambda failed, message: self._spawn(
                    self._fail(live, EventCode.WRITE_FAILED, message, failed.source.feed_id)
                ),
            )
            live.captures[feed.feed_id] = capture
        try:
            await capture.start()
        except SubscribeFailed as error:
            await self._capture_failed(live, capture, EventCode.SUBSCRIBE_FAILED, str(error))
            return
        except FileCreateFailed as error:
            await self._capture_failed(live, capture, EventCode.FILE_CREATE_FAILED, str(error))
            return
        async with live.lock:
            if live.captures.get(feed.feed_id) is not capture:
                # The job stopped (or the feed ended) while the capture started.
                return
            self._update_files(job, capture)
            live.health[feed.feed_id] = FeedHealth(self._health_rules, since=time.monotonic())
            if job.state is JobState.PAUSED:
                capture.pause()
            await self._store.save(job, [])
        log.info("recording_feed", record_id=job.record_id, feed_id=feed.feed_id)

    async def _check_streams(self, live: LiveJob) -> None:
        """Seed 002 recordTotalStream / startTimeout: fewer streams recording by then fails the job with
        100004 ("订阅路数缺失")."""
        await asyncio.sleep(live.options.start_timeout_s)
        recording = sum(1 for capture in live.captures.values() if capture.sinks)
        if live.job.live and recording < live.options.record_total_stream:
            message = (
                f"{recording} of at least {live.options.record_total_stream} streams recording "
                f"after {live.options.start_timeout_s:g} s"
            )
            await self._fail(live, EventCode.STREAMS_MISSING, message)

    async def _watch(self, live: LiveJob) -> None:
        """Seed 002's warnings while the job lives: 500301 / 500302 per feed, 50 for the storage folder."""
        rules = self._health_rules
        storage = StorageHealth(rules)
        tick_s = min(1.0, rules.stall_s / 4, rules.window_s / 4)
        while live.job.live:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            warnings: list[tuple[EventCode, str, str]] = []
            for feed_id, capture in list(live.captures.items()):
                health = live.health.get(feed_id)
                if health is not None:
                    checked = health.check(now, capture.frames, capture.video_frames)
                    warnings += [(code, message, feed_id) for code, message in checked]
            if rules.min_free_bytes:
                free = await asyncio.to_thread(self._free_bytes)
                warnings += [(code, message, "") for code, message in storage.check(free)]
            if not warnings:
                continue
            async with live.lock:
                if not live.job.live:
                    return
                for code, message, feed_id in warnings:
                    log.warning(
                        "recording_warning",
                        record_id=live.job.record_id,
                        code=code,
                        feed_id=feed_id,
                        msg=message,
                    )
                transitions = [live.job.warn(code, message, feed_id) for code, message, feed_id in warnings]
                await self._store.save(live.job, transitions)

    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self._storage_dir).free
        except OSError:
            # A folder that cannot be read is reported by the writes that fail (100101 / 100106).
            return self._health_rules.min_free_bytes

    async def _capture_failed(
        self, live: LiveJob, capture: FeedCapture, code: EventCode, message: str
    ) -> None:
        log.warning("recording_feed_failed", record_id=live.job.record_id, code=code, msg=message)
        if code is EventCode.FILE_CREATE_FAILED:
            await self._fail(live, code, message, capture.source.feed_id)
            return
        async with live.lock:
            if live.captures.get(capture.source.feed_id) is not capture:
                return
            del live.captures[capture.source.feed_id]
            await self._quietly_close(capture)
            if live.job.live:
                await self._store.save(live.job, [live.job.warn(code, message, capture.source.feed_id)])

    async def _feed_ended(self, live: LiveJob, capture: FeedCapture) -> None:
        async with live.lock:
            if live.captures.get(capture.source.feed_id) is not capture or not live.job.live:
                return
            transitions = await self._close_captures(live, [capture])
            await self._store.save(live.job, transitions)

    async def _fail(self, live: LiveJob, code: EventCode, message: str, feed_id: str = "") -> None:
        async with live.lock:
            if not live.job.live:
                return
            now = _now()
            for capture in list(live.captures.values()):
                await self._quietly_close(capture)
                for file in self._update_files(live.job, capture):
                    file.ended_at = now
            live.captures.clear()
            if live.compositor is not None:
                await self._quietly_close_compositor(live.compositor)
                for file in self._composite_files(live.job, live.compositor):
                    file.ended_at = now
            transitions = live.job.fail(code, message, now, feed_id)
            self._forget(live)
            await self._store.save(live.job, transitions)
        log.warning("recording_failed", record_id=live.job.record_id, code=code, msg=message)

    async def _close_captures(self, live: LiveJob, captures: Iterable[FeedCapture]) -> list[Transition]:
        """Close `captures` (held under the job's lock): an event 0 for each file completed; a disk that
        refuses the end of a file fails the job (100106)."""
        transitions: list[Transition] = []
        closing = list(captures)
        # Every file ends now, not once each link has wound down (that can take a while).
        for capture in closing:
            capture.stop_writing()
        ended = _now()
        for capture in closing:
            live.captures.pop(capture.source.feed_id, None)
            live.health.pop(capture.source.feed_id, None)
            try:
                await capture.close()
            except WriteFailed as error:
                for file in self._update_files(live.job, capture):
                    file.ended_at = ended
                transitions += live.job.fail(
                    EventCode.WRITE_FAILED, str(error), ended, capture.source.feed_id
                )
                continue
            if live.job.live:
                for file in self._update_files(live.job, capture):
                    transitions.append(live.job.file_closed(file, ended))
        return transitions

    def _start_compositor(self, live: LiveJob) -> None:
        job = live.job
        loop = asyncio.get_running_loop()

        def failed(failure: CompositorFailed) -> None:
            # On the compositor's thread: the job fails on the event loop.
            loop.call_soon_threadsafe(self._spawn, self._fail(live, EventCode(failure.code), str(failure)))

        suffix = FORMATS[live.options.format].suffix
        path = self._storage_dir / job.folder / f"{job.record_id}{suffix}"
        split = self._split_folder(live) / f"{job.record_id}-{live.options.split_kind()}{suffix}"
        try:
            live.compositor = Compositor(path, live.options, on_failure=failed, split_path=split)
        except OSError as error:
            message = f"{error.strerror or error}: {error.filename or ''}"
            self._spawn(self._fail(live, EventCode.FILE_CREATE_FAILED, message))

    async def _close_compositor(self, live: LiveJob) -> list[Transition]:
        """Finish the composite file (on a worker thread: the encoders flush): its event 0, or the job
        failed with the compositor's code."""
        compositor = live.compositor
        if compositor is None or not live.job.live:
            return []
        # The file ends now; its encoders flush after.
        ended = _now()
        try:
            await asyncio.to_thread(compositor.close)
        except CompositorFailed as failure:
            for file in self._composite_files(live.job, compositor):
                file.ended_at = ended
            return live.job.fail(EventCode(failure.code), str(failure), ended)
        return [live.job.file_closed(file, ended) for file in self._composite_files(live.job, compositor)]

    def _composite_files(self, job: RecordJob, compositor: Compositor) -> list[RecordFile]:
        files = [self._update_file(job, compositor, "", "")]
        if compositor.split is not None:
            files.append(self._update_file(job, compositor.split, "", ""))
        return files

    def _sinks(self, live: LiveJob, feed: FeedSource, video: str, audio: str) -> list[FrameSink]:
        if live.compositor is not None:
            return [live.compositor.input(feed.feed_id, feed.uid, feed.tag, video, audio)]
        return self._feed_files(live, feed, video, audio)

    def _feed_files(self, live: LiveJob, feed: FeedSource, video: str, audio: str) -> list[FrameSink]:
        """Single mode: the feed's file in the asked format with the asked kinds, and its split file
        (seed 002 splitType / splitFilePath); raises OSError when one cannot be created."""
        options, job = live.options, live.job
        fmt = FORMATS[options.format]
        name = f"{safe_name(feed.uid)}-{safe_name(feed.feed_id)}"
        files: list[FrameSink] = []
        main_video = video if options.wants("video") else ""
        main_audio = audio if options.wants("audio") else ""
        if main_video or main_audio:
            path = self._storage_dir / job.folder / f"{name}{fmt.suffix}"
            files.append(
                FeedFile(path, video_codec=main_video, audio_codec=main_audio, fmt=fmt, crf=options.crf)
            )
        split = options.split_kind()
        if split and (video if split == "video" else audio):
            folder = self._split_folder(live)
            files.append(
                FeedFile(
                    folder / f"{name}-{split}{fmt.suffix}",
                    video_codec=video if split == "video" else "",
                    audio_codec=audio if split == "audio" else "",
                    fmt=fmt,
                    crf=options.crf,
                )
            )
        return files

    def _split_folder(self, live: LiveJob) -> Path:
        """Seed 002 splitFilePath ("后端自动生成" when not given: the job's own folder)."""
        job = live.job
        if not live.options.split_file_path:
            return self._storage_dir / job.folder
        return self._storage_dir / job_folder(
            live.options.split_file_path, job.biz_name, job.room_id, job.record_id
        )

    def _update_files(self, job: RecordJob, capture: FeedCapture) -> list[RecordFile]:
        files = []
        for media in capture.sinks:
            if isinstance(media, FeedFile):
                files.append(self._update_file(job, media, capture.source.feed_id, capture.source.uid))
        return files

    def _update_file(
        self, job: RecordJob, media: FeedFile | Compositor | SplitFile, feed_id: str, uid: str
    ) -> RecordFile:
        relative = str(media.path.relative_to(self._storage_dir))
        file = job.files.get(media.path.name)
        if file is None:
            file = RecordFile(
                name=media.path.name,
                path=relative,
                feed_id=feed_id,
                uid=uid,
                started_at=_now(),
                video_codec=media.video_codec,
                audio_codec=media.audio_codec,
            )
            job.file_opened(file)
        file.size_bytes = media.size_bytes()
        file.duration_ms = media.duration_ms
        file.video_packets = media.video_packets
        file.audio_packets = media.audio_packets
        file.first_frame_ms = media.first_frame_ms
        return file

    @staticmethod
    async def _quietly_close_compositor(compositor: Compositor) -> None:
        try:
            await asyncio.to_thread(compositor.close)
        except CompositorFailed:
            pass

    @staticmethod
    async def _quietly_close(capture: FeedCapture) -> None:
        try:
            await capture.close()
        except WriteFailed:
            pass

    def _size_of(self, file: RecordFile) -> int:
        try:
            return (self._storage_dir / file.path).stat().st_size
        except OSError:
            return file.size_bytes

    # Lookups

    async def _job(self, record_id: str, biz_name: str) -> RecordJob:
        job = await self._store.get(record_id) if record_id else None
        if job is None or (biz_name and job.biz_name != biz_name):
            raise RECORD_UNKNOWN(f"no recording {record_id}")
        return job

    async def _live_job(self, record_id: str, biz_name: str, uid: str, not_in_room: ErrorKind) -> LiveJob:
        job = await self._job(record_id, biz_name)
        await self._check_participant(job, uid, not_in_room)
        live = self._live.get(record_id)
        if live is None:
            raise RECORD_ENDED(f"the recording has {job.state.name.lower()} already")
        return live

    async def _check_participant(self, job: RecordJob, uid: str, not_in_room: ErrorKind) -> None:
        if not uid:
            return
        room = await self._rooms.get(job.room_id)
        if room is None or uid not in room.participants:
            raise not_in_room(f"{uid} is not in room {job.room_id}")

    def _forget(self, live: LiveJob) -> None:
        self._live.pop(live.job.record_id, None)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("recording_task_failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
