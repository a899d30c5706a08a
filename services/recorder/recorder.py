"""The recorder's work: recording jobs (jobs.py) stored with their events (store.py), and for each live
job one capture per feed of its room (capture.py).

Every change is stored, with its event, before it is answered or acted on further. Media state (peer
connections, open files) is in memory only while a job is live; a job found live at start-up lost its
media with the previous process and is failed with 100105, its files kept as far as they were written.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

import structlog
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub

from services.core.config import RecorderSettings
from services.core.errors import ErrorKind, ParleyError
from services.core.shared_errors import START_FAILED
from services.recorder.capture import FeedCapture, FeedSource, FileCreateFailed, SubscribeFailed
from services.recorder.errors import (
    ALREADY_RECORDING,
    PAUSE_ROOM_STATE,
    RECORD_ENDED,
    RECORD_NOT_IN_ROOM,
    RECORD_PARAM_INVALID,
    RECORD_ROOM_NOT_FOUND,
    RECORD_UNKNOWN,
    RESUME_ROOM_STATE,
)
from services.recorder.files import WriteFailed
from services.recorder.jobs import EventCode, JobState, RecordFile, RecordJob, Transition
from services.recorder.store import JobStore

log = structlog.get_logger(__name__)

# Seed 002 StartRemoteRecord file_path, kept to a plain relative folder inside the storage folder.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
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
    captures: dict[str, FeedCapture] = field(default_factory=dict)
    # Every feed a capture was started for: a feed is recorded once, however often it is announced (the
    # room's answer at start and its FeedPublished fact may both name it, and a fact may come late).
    feeds_seen: set[str] = field(default_factory=set)
    # One change of the job at a time: captures start and end concurrently with stop/pause/resume.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _now() -> datetime:
    return datetime.now(UTC)


def safe_name(text: str) -> str:
    return _UNSAFE_NAME.sub("_", text)[:64] or "_"


def job_folder(file_path: str, biz_name: str, room_id: str, record_id: str) -> str:
    """The job's folder relative to the storage folder: the caller's file_path (seed 002), then
    <bizName>/<roomId>/<recordId>."""
    prefix = PurePosixPath(file_path) if file_path else PurePosixPath()
    return str(prefix / safe_name(biz_name) / safe_name(room_id) / record_id)


def check_start_params(record_param_json: str, file_path: str) -> None:
    if record_param_json:
        try:
            param = json.loads(record_param_json)
        except json.JSONDecodeError:
            raise RECORD_PARAM_INVALID("recordParam is not JSON") from None
        if not isinstance(param, dict):
            raise RECORD_PARAM_INVALID("recordParam is a JSON object")
    if file_path:
        parts = PurePosixPath(file_path).parts
        if not _SAFE_PATH.match(file_path) or file_path.startswith("/") or ".." in parts:
            raise RECORD_PARAM_INVALID(
                "file_path is a relative folder of letters, digits, '_', '-', '.' and '/', without '..'"
            )


class Recorder:
    def __init__(
        self,
        store: JobStore,
        rooms: RoomDirectory,
        relays: RelayStubs,
        settings: RecorderSettings,
        storage_dir: Path,
    ) -> None:
        self._store = store
        self._rooms = rooms
        self._relays = relays
        self._settings = settings
        self._storage_dir = storage_dir
        self._live: dict[str, LiveJob] = {}
        self._starting = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

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
        check_start_params(record_param_json, file_path)
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
            live = self._live[record_id] = LiveJob(job)
        log.info("recording_started", record_id=record_id, room_id=room_id, feeds=len(room.feeds))
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
            transitions = await self._close_captures(live, live.captures.values())
            if live.job.live:
                transitions += live.job.stop(_now())
            self._forget(live)
            await self._store.save(live.job, transitions)
        log.info("recording_stopped", record_id=record_id, files=len(live.job.files))
        return live.job

    async def pause(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, PAUSE_ROOM_STATE)
        async with live.lock:
            transition = live.job.pause()
            for capture in live.captures.values():
                capture.pause()
            await self._store.save(live.job, [transition])
        return live.job

    async def resume(self, record_id: str, *, biz_name: str = "", uid: str = "") -> RecordJob:
        live = await self._live_job(record_id, biz_name, uid, RESUME_ROOM_STATE)
        async with live.lock:
            transition = live.job.resume()
            for capture in live.captures.values():
                capture.resume()
            await self._store.save(live.job, [transition])
        return live.job

    async def info(self, record_id: str, *, biz_name: str = "") -> RecordJob:
        live = self._live.get(record_id)
        if live is not None and (not biz_name or live.job.biz_name == biz_name):
            for capture in live.captures.values():
                # A capture still negotiating with its relay has no file yet.
                if capture.file is not None:
                    self._update_file(live.job, capture)
            return live.job
        return await self._job(record_id, biz_name)

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
            name = f"{safe_name(feed.uid)}-{safe_name(feed.feed_id)}"
            capture = FeedCapture(
                feed,
                room_id=job.room_id,
                biz_name=job.biz_name,
                relay=self._relays(relay_address),
                path_without_suffix=self._storage_dir / job.folder / name,
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
            self._update_file(job, capture)
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
                if capture.file is not None:
                    self._update_file(live.job, capture).ended_at = now
            live.captures.clear()
            transitions = live.job.fail(code, message, now, feed_id)
            self._forget(live)
            await self._store.save(live.job, transitions)
        log.warning("recording_failed", record_id=live.job.record_id, code=code, msg=message)

    async def _close_captures(self, live: LiveJob, captures: Iterable[FeedCapture]) -> list[Transition]:
        """Close `captures` (held under the job's lock): an event 0 for each file completed; a disk that
        refuses the end of a file fails the job (100106)."""
        transitions: list[Transition] = []
        for capture in list(captures):
            live.captures.pop(capture.source.feed_id, None)
            try:
                await capture.close()
            except WriteFailed as error:
                now = _now()
                if capture.file is not None:
                    self._update_file(live.job, capture).ended_at = now
                transitions += live.job.fail(EventCode.WRITE_FAILED, str(error), now, capture.source.feed_id)
                continue
            if capture.file is not None and live.job.live:
                file = self._update_file(live.job, capture)
                transitions.append(live.job.file_closed(file, _now()))
        return transitions

    def _update_file(self, job: RecordJob, capture: FeedCapture) -> RecordFile:
        assert capture.file is not None
        media = capture.file
        relative = str(media.path.relative_to(self._storage_dir))
        file = job.files.get(media.path.name)
        if file is None:
            file = RecordFile(
                name=media.path.name,
                path=relative,
                feed_id=capture.source.feed_id,
                uid=capture.source.uid,
                started_at=_now(),
                video_codec=capture.video_codec,
                audio_codec=capture.audio_codec,
            )
            job.file_opened(file)
        file.size_bytes = media.size_bytes()
        file.duration_ms = media.duration_ms
        file.video_packets = media.video_packets
        file.audio_packets = media.audio_packets
        file.first_frame_ms = media.first_frame_ms
        return file

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
