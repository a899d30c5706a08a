"""Days and spans of days in an app's time zone, and the query ranges seed 002 5.4 offers: today,
yesterday, the last 7 or 30 days, or a custom span of at most 30 days within the last year."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.billing.errors import RANGE_INVALID, TIME_ZONE_UNKNOWN

MAX_SPAN_DAYS = 30
# Seed 002 5.4: "自定义时间段支持查询过去一年内" (a custom span within the past year).
LOOKBACK_DAYS = 366
_NAMED = {"today": (0, 0), "yesterday": (1, 1), "7d": (6, 0), "30d": (29, 0)}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise TIME_ZONE_UNKNOWN(f"unknown time zone {name!r}") from None


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exact for whole milliseconds (floored below them)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def day_window(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local day in epoch ms (23 or 25 hours long where clocks change)."""
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return to_ms(start), to_ms(end)


def day_of(ms: int, tz: ZoneInfo) -> date:
    return from_ms(ms).astimezone(tz).date()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


@dataclass(frozen=True)
class DaySpan:
    first: date
    last: date

    def window(self, tz: ZoneInfo) -> tuple[int, int]:
        return day_window(self.first, tz)[0], day_window(self.last, tz)[1]

    def days(self) -> list[date]:
        return days(self.first, self.last)


def parse_date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RANGE_INVALID(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def resolve(range_name: str, start: str, end: str, *, today: date) -> DaySpan:
    """The days a query covers; RANGE_INVALID for anything the seed does not offer."""
    if range_name and (start or end):
        raise RANGE_INVALID("give either range or start and end, not both")
    if range_name:
        if range_name not in _NAMED:
            raise RANGE_INVALID(f"range {range_name!r} is none of today, yesterday, 7d, 30d")
        back_first, back_last = _NAMED[range_name]
        return DaySpan(today - timedelta(days=back_first), today - timedelta(days=back_last))
    if not (start and end):
        raise RANGE_INVALID("give range (today, yesterday, 7d, 30d) or both start and end")
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if last < first:
        raise RANGE_INVALID("end is before start")
    if (last - first).days + 1 > MAX_SPAN_DAYS:
        raise RANGE_INVALID(f"a span covers at most {MAX_SPAN_DAYS} days")
    if last > today:
        raise RANGE_INVALID("end is in the future")
    if (today - first).days >= LOOKBACK_DAYS:
        raise RANGE_INVALID("start is more than a year ago")
    return DaySpan(first, last)


def parse_month(text: str) -> tuple[date, date]:
    """The first and last day of a YYYY-MM month."""
    try:
        first = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise RANGE_INVALID(f"month {text!r} is not YYYY-MM") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)
