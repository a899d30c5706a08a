"""Where a job's files are written in the storage folder, and the job's record of each file
(jobs.RecordFile) kept up to date from the file being written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from services.recorder.capture import FeedCapture, FeedSource, FrameSink
from services.recorder.compositor import Compositor, SplitFile
from services.recorder.files import FORMATS, FeedFile
from services.recorder.jobs import RecordFile, RecordJob
from services.recorder.params import RecordOptions

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


def safe_name(text: str) -> str:
    return _UNSAFE_NAME.sub("_", text)[:64] or "_"


def job_folder(file_path: str, biz_name: str, room_id: str, record_id: str) -> str:
    """The job's folder relative to the storage folder: the caller's file_path (seed 002), then
    <bizName>/<roomId>/<recordId>."""
    prefix = PurePosixPath(file_path) if file_path else PurePosixPath()
    return str(prefix / safe_name(biz_name) / safe_name(room_id) / record_id)


def split_folder(storage_dir: Path, job: RecordJob, options: RecordOptions) -> Path:
    """Seed 002 splitFilePath ("后端自动生成" when not given: the job's own folder)."""
    if not options.split_file_path:
        return storage_dir / job.folder
    return storage_dir / job_folder(options.split_file_path, job.biz_name, job.room_id, job.record_id)


def composite_paths(storage_dir: Path, job: RecordJob, options: RecordOptions) -> tuple[Path, Path]:
    """Composite mode: the job's one file, and its split file (written only when a split is asked)."""
    suffix = FORMATS[options.format].suffix
    path = storage_dir / job.folder / f"{job.record_id}{suffix}"
    split = split_folder(storage_dir, job, options) / f"{job.record_id}-{options.split_kind()}{suffix}"
    return path, split


def feed_files(
    storage_dir: Path, job: RecordJob, options: RecordOptions, feed: FeedSource, video: str, audio: str
) -> list[FrameSink]:
    """Single mode: the feed's file in the asked format with the asked kinds, and its split file
    (seed 002 splitType / splitFilePath); raises OSError when one cannot be created."""
    fmt = FORMATS[options.format]
    name = f"{safe_name(feed.uid)}-{safe_name(feed.feed_id)}"
    files: list[FrameSink] = []
    main_video = video if options.wants("video") else ""
    main_audio = audio if options.wants("audio") else ""
    if main_video or main_audio:
        path = storage_dir / job.folder / f"{name}{fmt.suffix}"
        files.append(FeedFile(path, video_codec=main_video, audio_codec=main_audio, fmt=fmt, crf=options.crf))
    split = options.split_kind()
    if split and (video if split == "video" else audio):
        folder = split_folder(storage_dir, job, options)
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


def capture_files(storage_dir: Path, job: RecordJob, capture: FeedCapture) -> list[RecordFile]:
    """The job's records of the files `capture` writes, brought up to date (a capture still negotiating
    with its relay has none yet)."""
    files = []
    for media in capture.sinks:
        if isinstance(media, FeedFile):
            files.append(_tracked(storage_dir, job, media, capture.source.feed_id, capture.source.uid))
    return files


def composite_files(storage_dir: Path, job: RecordJob, compositor: Compositor) -> list[RecordFile]:
    """The job's records of the composite file and its split file, brought up to date."""
    files = [_tracked(storage_dir, job, compositor, "", "")]
    if compositor.split is not None:
        files.append(_tracked(storage_dir, job, compositor.split, "", ""))
    return files


def size_on_disk(storage_dir: Path, file: RecordFile) -> int:
    """The file's size as written, or the last size recorded when it cannot be read."""
    try:
        return (storage_dir / file.path).stat().st_size
    except OSError:
        return file.size_bytes


def _tracked(
    storage_dir: Path, job: RecordJob, media: FeedFile | Compositor | SplitFile, feed_id: str, uid: str
) -> RecordFile:
    """The job's record of `media`'s file, opened in the job the first time it is seen."""
    relative = str(media.path.relative_to(storage_dir))
    file = job.files.get(media.path.name)
    if file is None:
        file = RecordFile(
            name=media.path.name,
            path=relative,
            feed_id=feed_id,
            uid=uid,
            started_at=datetime.now(UTC),
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
