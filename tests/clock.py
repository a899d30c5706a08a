"""The one fake clock of the tests: time that moves only when the test moves it.

Code under test takes its clock as a callable: `FakeClock()` answers seconds (as `time.monotonic` would),
`FakeClock().utc` the same instant as an aware UTC datetime (for code that keeps timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, now: float = 1000.0, *, utc_at_start: datetime | None = None) -> None:
        # Seconds on the monotonic scale; tests may also move it with `clock.now += seconds`.
        self.now = now
        start = utc_at_start or datetime.now(UTC).replace(microsecond=0)
        self._utc_at_zero = start - timedelta(seconds=now)

    def __call__(self) -> float:
        return self.now

    def advance(self, by: float | timedelta) -> None:
        self.now += by.total_seconds() if isinstance(by, timedelta) else by

    def utc(self) -> datetime:
        return self._utc_at_zero + timedelta(seconds=self.now)
