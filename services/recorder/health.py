"""Warnings about a recording while it runs, as seed 002's recording callback names them (云端录制回调
eventCode): 500301 "流断开警告" (stream disconnected), 500302 "低帧率警告" (low frame rate) and 50 "录制警告"
(a recording warning the seed does not name further; Parley raises it when the storage folder runs short
of space, before writes fail with 100106). A warning is reported once when its situation begins, and again
only after the situation has ended and begun anew. No I/O here: the recorder feeds the counters in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from services.recorder.jobs import EventCode

HealthWarning = tuple[EventCode, str]


@dataclass(frozen=True)
class HealthRules:
    # A feed that delivers no frame (of any kind) for this long is disconnected: 500301.
    stall_s: float
    # Video arriving slower than this many frames a second, measured over `window_s`: 500302. A feed
    # that sends no video at all (muted, audio only) has no frame rate to be low.
    low_fps: float
    window_s: float
    # Storage with less free space than this: 50. 0 turns the check off.
    min_free_bytes: int


@dataclass
class FeedHealth:
    """One feed's frame counters as its capture counts them, judged at every tick."""

    rules: HealthRules
    # When the feed's link connected: no frame yet is no stall until `stall_s` after it.
    since: float
    _frames: int = 0
    _last_frame_at: float = 0.0
    # (time, video frames so far), oldest first, covering at least the last `window_s`.
    _video: deque[tuple[float, int]] = field(default_factory=deque)
    _stalled: bool = False
    _slow: bool = False

    def __post_init__(self) -> None:
        self._last_frame_at = self.since

    def check(self, now: float, frames: int, video_frames: int) -> list[HealthWarning]:
        warnings: list[HealthWarning] = []
        if frames != self._frames:
            self._frames, self._last_frame_at, self._stalled = frames, now, False
        elif not self._stalled and now - self._last_frame_at >= self.rules.stall_s:
            self._stalled = True
            silent_s = now - self._last_frame_at
            warnings.append((EventCode.STREAM_DISCONNECTED, f"no media from the stream for {silent_s:.1f} s"))
        self._video.append((now, video_frames))
        while len(self._video) > 1 and now - self._video[1][0] >= self.rules.window_s:
            self._video.popleft()
        first_at, first_count = self._video[0]
        if now - first_at < self.rules.window_s or now - self.since < self.rules.window_s:
            return warnings
        fps = (video_frames - first_count) / (now - first_at)
        if 0 < fps < self.rules.low_fps:
            if not self._slow:
                self._slow = True
                warnings.append(
                    (EventCode.LOW_FRAME_RATE, f"video at {fps:.1f} frames/s, below {self.rules.low_fps:g}")
                )
        else:
            self._slow = False
        return warnings


@dataclass
class StorageHealth:
    rules: HealthRules
    _short: bool = False

    def check(self, free_bytes: int) -> list[HealthWarning]:
        short = free_bytes < self.rules.min_free_bytes
        warnings: list[HealthWarning] = []
        if short and not self._short:
            warnings.append(
                (
                    EventCode.WARNING,
                    f"the storage folder has {free_bytes} bytes free, below {self.rules.min_free_bytes}",
                )
            )
        self._short = short
        return warnings
