"""What runs beside a live job on a timer: seed 002's start timeout for recordTotalStream, and the
warnings while the job lives (the rules are health.py's; this feeds them and stores what they raise)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from services.recorder.health import HealthRules, StorageHealth
from services.recorder.jobs import EventCode
from services.recorder.live_job import LiveJob
from services.recorder.store import JobStore

log = structlog.get_logger(__name__)

# Fails the job with the code and message (the recorder's, which closes its media first).
FailJob = Callable[[LiveJob, EventCode, str], Awaitable[None]]


async def fail_if_streams_missing(live: LiveJob, fail: FailJob) -> None:
    """Seed 002 recordTotalStream / startTimeout: fewer streams recording by then fails the job with
    100004 ("订阅路数缺失")."""
    await asyncio.sleep(live.options.start_timeout_s)
    recording = sum(1 for capture in live.captures.values() if capture.sinks)
    if live.job.live and recording < live.options.record_total_stream:
        message = (
            f"{recording} of at least {live.options.record_total_stream} streams recording "
            f"after {live.options.start_timeout_s:g} s"
        )
        await fail(live, EventCode.STREAMS_MISSING, message)


async def warn_while_live(live: LiveJob, rules: HealthRules, storage_dir: Path, store: JobStore) -> None:
    """Seed 002's warnings while the job lives: 500301 / 500302 per feed, 50 for the storage folder."""
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
            free = await asyncio.to_thread(_free_bytes, storage_dir, rules)
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
            await store.save(live.job, transitions)


def _free_bytes(storage_dir: Path, rules: HealthRules) -> int:
    try:
        return shutil.disk_usage(storage_dir).free
    except OSError:
        # A folder that cannot be read is reported by the writes that fail (100101 / 100106).
        return rules.min_free_bytes
