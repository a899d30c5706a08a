"""The recorder's coordinator: it starts, pauses, resumes and stops recording jobs (jobs.py, stored with
their events by store.py) and, for each live job (live_job.py), starts one capture per feed of its room
(capture.py) into the job's files (job_files.py) or its compositor (compositor.py), following the room
manager's facts. It asks the room manager through room_directory.py, runs the timers beside each job
(watch.py) and hands a stopped job's files to stored_files.py, which uploads, lists and expires them.

Every change is stored, with its event, before it is answered or acted on further. Media state (peer
connections, open files) is in memory only while a job is live; a job found live at start-up lost its
media with the previous process and is failed with 100105, its files kept as far as they were written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub

from services.core.config import RecorderSettings
from services.core.errors import ErrorKind
from services.core.ssrf import TargetGuard
from services.recorder import job_files
from services.recorder.capture import FeedCapture, FeedSource, FileCreateFailed, FrameSink, SubscribeFailed
from services.recorder.compositor import Compositor, CompositorFailed
from services.recorder.errors import (
    ALREADY_RECORDING,
    PAUSE_ROOM_STATE,
    RECORD_ENDED,
    RECORD_NOT_IN_ROOM,
    RECORD_PARAM_INVALID,
    RECORD_UNKNOWN,
    RESUME_ROOM_STATE,
    WATERMARK_FAILED,
)
from services.recorder.files import WriteFailed
from services.recorder.health import FeedHealth, HealthRules
from services.recorder.images import ImageFetcher
from services.recorder.jobs import EventCode, JobState, RecordJob, Transition
from services.recorder.layout import in_layout
from services.recorder.live_job import LiveJob
from services.recorder.params import Mode, check_folder, parse_record_param, parse_watermark_change
from services.recorder.room_directory import RoomDirectory, check_participant, room_to_record
from services.recorder.storage import Storage
from services.recorder.store import JobStore
from services.recorder.stored_files import StoredFiles
from services.recorder.watch import fail_if_streams_missing, warn_while_live

log = structlog.get_logger(__name__)

RelayStubs = Callable[[str], RelayServiceStub]


def _now() -> datetime:
    return datetime.now(UTC)


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
        # The files of ended jobs: their upload, management and retention.
        self.files = StoredFiles(store, settings, storage_dir, storage)
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
                file.size_bytes = job_files.size_on_disk(self._storage_dir, file)
                file.ended_at = now
            transitions = job.fail(EventCode.PROCESS_CRASHED, "the recorder stopped while recording", now)
            await self._store.save(job, transitions)
            log.warning("recording_lost", record_id=job.record_id, room_id=job.room_id)
        # Stopped jobs whose upload the previous process did not finish: their files are complete.
        for job in await self._store.uploading_jobs():
            self._spawn(self.files.upload(job))

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
        room = await room_to_record(self._rooms, room_id, biz_name, uid)
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
                folder=job_files.job_folder(file_path, room.biz_name, room_id, record_id),
                created_at=_now(),
            )
            await self._store.create(job, job.initialised())
            live = self._live[record_id] = LiveJob(job, options)
        log.info("recording_started", record_id=record_id, room_id=room_id, feeds=len(room.feeds))
        if options.mode is Mode.COMPOSITE:
            self._start_compositor(live)
            if live.compositor is not None:
                # Stored now: a recorder that dies before the first feed is in still lists the file.
                job_files.composite_files(self._storage_dir, job, live.compositor)
                await self._store.save(job, [])
        if options.record_total_stream:
            self._spawn(fail_if_streams_missing(live, self._fail))
        self._spawn(warn_while_live(live, self._health_rules, self._storage_dir, self._store))
        for feed in room.feeds:
            self._spawn(self._add_feed(live, feed, room.relay_address))
        return job

    async def stop(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        job = await self._job(record_id, biz_name)
        await check_participant(self._rooms, job.room_id, uid, RECORD_NOT_IN_ROOM)
        live = self._live.get(record_id)
        if live is None:
            raise RECORD_ENDED(f"the recording has {job.state.name.lower()} already")
        async with live.lock:
            if not live.job.live:
                raise RECORD_ENDED(f"the recording has {live.job.state.name.lower()} already")
            # The composite first: its last pictures still show every feed.
            transitions = await self._close_compositor(live)
            transitions += await self._close_captures(live, live.captures.values())
            upload = self.files.uploads and bool(live.job.files)
            if live.job.live:
                transitions += live.job.stop(_now(), upload=upload)
            self._forget(live)
            await self._store.save(live.job, transitions)
        if live.job.state is JobState.UPLOADING:
            self._spawn(self.files.upload(live.job))
        log.info("recording_stopped", record_id=record_id, files=len(live.job.files))
        return live.job

    async def pause(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, PAUSE_ROOM_STATE)
        async with live.lock:
            transition = live.job.pause()
            live.pause_media()
            await self._store.save(live.job, [transition])
        return live.job

    async def resume(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, RESUME_ROOM_STATE)
        async with live.lock:
            transition = live.job.resume()
            live.resume_media()
            await self._store.save(live.job, [transition])
        return live.job

    async def info(self, record_id: str, *, biz_name: str = "") -> RecordJob:
        live = self._live.get(record_id)
        if live is not None and (not biz_name or live.job.biz_name == biz_name):
            for capture in live.captures.values():
                job_files.capture_files(self._storage_dir, live.job, capture)
            if live.compositor is not None:
                job_files.composite_files(self._storage_dir, live.job, live.compositor)
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
        overlays = await self._images.fetched(parse_watermark_change(overlaps_json), WATERMARK_FAILED)
        live.compositor.set_overlays(overlays)
        log.info("recording_watermark_changed", record_id=record_id, overlays=len(overlays))
        return live.job

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
            job_files.capture_files(self._storage_dir, job, capture)
            live.health[feed.feed_id] = FeedHealth(self._health_rules, since=time.monotonic())
            if job.state is JobState.PAUSED:
                capture.pause()
            await self._store.save(job, [])
        log.info("recording_feed", record_id=job.record_id, feed_id=feed.feed_id)

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
                for file in job_files.capture_files(self._storage_dir, live.job, capture):
                    file.ended_at = now
            live.captures.clear()
            if live.compositor is not None:
                await self._quietly_close_compositor(live.compositor)
                for file in job_files.composite_files(self._storage_dir, live.job, live.compositor):
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
                for file in job_files.capture_files(self._storage_dir, live.job, capture):
                    file.ended_at = ended
                transitions += live.job.fail(
                    EventCode.WRITE_FAILED, str(error), ended, capture.source.feed_id
                )
                continue
            if live.job.live:
                for file in job_files.capture_files(self._storage_dir, live.job, capture):
                    transitions.append(live.job.file_closed(file, ended))
        return transitions

    def _start_compositor(self, live: LiveJob) -> None:
        job = live.job
        loop = asyncio.get_running_loop()

        def failed(failure: CompositorFailed) -> None:
            # On the compositor's thread: the job fails on the event loop.
            loop.call_soon_threadsafe(self._spawn, self._fail(live, EventCode(failure.code), str(failure)))

        path, split = job_files.composite_paths(self._storage_dir, job, live.options)
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
            for file in job_files.composite_files(self._storage_dir, live.job, compositor):
                file.ended_at = ended
            return live.job.fail(EventCode(failure.code), str(failure), ended)
        files = job_files.composite_files(self._storage_dir, live.job, compositor)
        return [live.job.file_closed(file, ended) for file in files]

    def _sinks(self, live: LiveJob, feed: FeedSource, video: str, audio: str) -> list[FrameSink]:
        if live.compositor is not None:
            return [live.compositor.input(feed.feed_id, feed.uid, feed.tag, video, audio)]
        return job_files.feed_files(self._storage_dir, live.job, live.options, feed, video, audio)

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

    # Lookups

    async def _job(self, record_id: str, biz_name: str) -> RecordJob:
        job = await self._store.get(record_id) if record_id else None
        if job is None or (biz_name and job.biz_name != biz_name):
            raise RECORD_UNKNOWN(f"no recording {record_id}")
        return job

    async def _live_job(self, record_id: str, biz_name: str, uid: str, not_in_room: ErrorKind) -> LiveJob:
        job = await self._job(record_id, biz_name)
        await check_participant(self._rooms, job.room_id, uid, not_in_room)
        live = self._live.get(record_id)
        if live is None:
            raise RECORD_ENDED(f"the recording has {job.state.name.lower()} already")
        return live

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
