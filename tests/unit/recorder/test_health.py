"""The recording's warnings judged from frame counters (seed 002 50, 500301, 500302): each once when its
situation begins, again only after it ended and began anew."""

from __future__ import annotations

from services.recorder.health import FeedHealth, HealthRules, StorageHealth
from services.recorder.jobs import EventCode

RULES = HealthRules(stall_s=2.0, low_fps=5.0, window_s=2.0, min_free_bytes=100)


def codes(found: list[tuple[EventCode, str]]) -> list[int]:
    return [int(code) for code, _ in found]


def test_a_stream_silent_for_the_stall_time_warns_once_and_again_after_it_came_back() -> None:
    health = FeedHealth(RULES, since=0.0)
    frames = 0
    seen: list[int] = []
    for tick in range(1, 30):
        now = tick * 0.5
        if not 3.0 <= now < 8.0 and not 10.0 <= now < 13.0:
            frames += 50
        seen += codes(health.check(now, frames, video_frames=frames))
    assert seen == [500301, 500301]


def test_slow_video_warns_low_frame_rate_and_no_video_is_not_slow() -> None:
    slow = FeedHealth(RULES, since=0.0)
    seen = [c for t in range(1, 20) for c in codes(slow.check(t * 0.5, frames=t * 25, video_frames=t))]
    # 2 frames a second against 5; the window must have passed before the first judgement.
    assert seen == [500302]
    muted = FeedHealth(RULES, since=0.0)
    assert [c for t in range(1, 20) for c in codes(muted.check(t * 0.5, frames=t * 25, video_frames=0))] == []
    healthy = FeedHealth(RULES, since=0.0)
    assert [c for t in range(1, 20) for c in codes(healthy.check(t * 0.5, t * 40, t * 15))] == []


def test_storage_short_of_space_warns_50_once_per_shortage() -> None:
    storage = StorageHealth(RULES)
    seen = [c for free in (500, 99, 50, 99, 500, 10) for c in codes(storage.check(free))]
    assert seen == [EventCode.WARNING, EventCode.WARNING]
