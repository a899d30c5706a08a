"""Two loops of aiortc's REMB estimator, run per frame on the relay's receive path, without the loop: its
incoming bitrate over the 1 s window, and its least frame period over the last 60 frames.

aiortc's `RemoteBitrateEstimator` counts received bytes in a `RateCounter`: 1,000 buckets of 1 ms, and
each `add` or `rate` first walks the buckets one millisecond at a time from the window's old origin to the
new one. The relay samples the estimator once per frame (receive.py), ~33 ms apart at 30 frames/s, and the
estimator calls `rate` twice and `add` once per sample: about 100 loop steps per frame to clear buckets
that are nearly all empty. `WindowRate` keeps only the samples in the window, oldest first, and drops those
the origin has passed; it answers `rate` with the same figure as the `RateCounter` fed the same calls.

The samples are kept at the millisecond of the bucket `RateCounter` would have put them in (the origin
plus the offset modulo the window), so a clock that steps back lands where it would have. Such a sample
can sit ahead of later ones; it is dropped when the origin passes the front sample rather than its own
millisecond, so after a wall-clock step back of over a second the figure can differ from aiortc's for up
to one window.

`OveruseEstimator.update_min_frame_period` finds the least of its last 60 timestamp deltas with a Python
loop calling `min` on each; `least_frame_period` asks `min` once for the whole list, for the same value.
"""

from __future__ import annotations

from collections import deque
from functools import partial

from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, RemoteBitrateEstimator


class WindowRate:
    """`aiortc.rate.RateCounter`'s `add`, `rate` and `reset`, for the estimator's `incoming_bitrate`."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self._samples: deque[tuple[int, int]] = deque()
        self._origin_ms: int | None = None
        # The sum of the samples' values; one sample per `add`, so "any sample" is the counter's count > 0.
        self._value = 0

    def add(self, value: int, now_ms: int) -> None:
        origin = self._origin_ms
        if origin is None:
            origin = self._origin_ms = now_ms
        else:
            origin = self._erase_old(origin, now_ms)
        self._samples.append((origin + (now_ms - origin) % self._window_size, value))
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        origin = self._origin_ms
        if origin is None:
            return None
        origin = self._erase_old(origin, now_ms)
        active_window_size = now_ms - origin + 1
        if self._samples and active_window_size > 1:
            return round(self._scale * self._value / active_window_size)
        return None

    def reset(self) -> None:
        self._samples.clear()
        self._origin_ms = None
        self._value = 0

    def _erase_old(self, origin: int, now_ms: int) -> int:
        new_origin = now_ms - self._window_size + 1
        if origin >= new_origin:
            return origin
        samples = self._samples
        while samples and samples[0][0] < new_origin:
            self._value -= samples.popleft()[1]
        self._origin_ms = new_origin
        return new_origin


def least_frame_period(history: list[float], ts_delta: float) -> float:
    """`OveruseEstimator.update_min_frame_period` for the estimator whose `ts_delta_hist` is `history`."""
    if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
        history.pop(0)
    least = min(history) if history else ts_delta
    history.append(ts_delta)
    return ts_delta if ts_delta < least else least


def speed_up(estimator: RemoteBitrateEstimator) -> None:
    """Give `estimator` a `WindowRate` in place of its `RateCounter` (same window and scale) and
    `least_frame_period` in place of its overuse estimator's loop."""
    overuse = estimator.estimator
    overuse.update_min_frame_period = partial(least_frame_period, overuse.ts_delta_hist)  # type: ignore[method-assign]
    counter = estimator.incoming_bitrate
    rate = WindowRate(counter._window_size, counter._scale)
    if counter._origin_ms is not None:
        # Samples already counted: keep the figure going rather than start the window again.
        for offset in range(counter._window_size):
            bucket = counter._buckets[(counter._origin_index + offset) % counter._window_size]
            if bucket.count:
                rate._samples.append((counter._origin_ms + offset, bucket.value))
        rate._origin_ms = counter._origin_ms
        rate._value = counter._total.value
    estimator.incoming_bitrate = rate  # type: ignore[assignment]
