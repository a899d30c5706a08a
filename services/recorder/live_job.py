"""A job while it records, in memory only: its captures (one per feed) or its compositor, and what the
recorder keeps of each feed. Nothing here survives the process (recorder.py fails such jobs at start-up)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.recorder.capture import FeedCapture
from services.recorder.compositor import Compositor
from services.recorder.health import FeedHealth
from services.recorder.jobs import RecordJob
from services.recorder.params import RecordOptions


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

    def pause_media(self) -> None:
        """Nothing is written while the job is paused; the files' time leaves the pause out."""
        if self.compositor is not None:
            self.compositor.pause()
        for capture in self.captures.values():
            capture.pause()

    def resume_media(self) -> None:
        if self.compositor is not None:
            self.compositor.resume()
        for capture in self.captures.values():
            capture.resume()
