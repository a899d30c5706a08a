"""The usage figures of seed 002 section 5.4 (用量统计), computed exactly from intervals.

Pure functions over what the ledger holds for one app and one window of time: the relay's metering
ticks (pieces of published and subscribed streams, with the tier forwarded) and the intervals of rooms,
participants and sessions. Every figure is a sum of interval lengths in milliseconds or a count; peaks
are the maximum of a sweep over the start and end events of half-open intervals [start, end), so an
interval that ends when another starts never overlaps it. docs/billing.md explains each figure with a
worked example.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from enum import IntEnum

MINUTE_MS = 60_000


class Tier(IntEnum):
    """Call tiers of seed 002 5.4, lowest first: each video tier is "that resolution or below"."""

    AUDIO = 0
    P360 = 1
    P540 = 2
    P720 = 3
    P1080 = 4

    @property
    def label(self) -> str:
        return "audio" if self is Tier.AUDIO else f"{self.name[1:]}P"


class Role(IntEnum):
    PUBLICATION = 1
    SUBSCRIPTION = 2


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """One metering tick: `uid` published or subscribed `stream_id` over [start_ms, end_ms) in `tier`."""

    uid: str
    stream_id: str
    role: Role
    tier: Tier
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Span:
    """A room, a participant's stay in a room, or a client session; `end_ms` is None while it lasts."""

    uid: str
    room_id: str
    start_ms: int
    end_ms: int | None
    # The room's engine (0 SFU, 2 P2P) for rooms and participants.
    engine: int = 0


P2P_ENGINE = 2


@dataclass(frozen=True)
class UsageInputs:
    pieces: list[StreamPiece] = field(default_factory=list)
    rooms: list[Span] = field(default_factory=list)
    participants: list[Span] = field(default_factory=list)
    sessions: list[Span] = field(default_factory=list)


@dataclass
class Figures:
    """The figures of one app over one window; field order is the API's."""

    call_audio_ms: int = 0
    call_360p_ms: int = 0
    call_540p_ms: int = 0
    call_720p_ms: int = 0
    call_1080p_ms: int = 0
    online_ms: int = 0
    published_stream_ms: int = 0
    subscribed_stream_ms: int = 0
    rooms: int = 0
    peak_rooms: int = 0
    online_users: int = 0
    call_users: int = 0
    peak_online_users: int = 0
    peak_call_users: int = 0
    billable_minutes: int = 0

    @staticmethod
    def names() -> list[str]:
        return [item.name for item in fields(Figures)]

    def call_ms(self) -> list[int]:
        """Call milliseconds in Tier order."""
        return [
            self.call_audio_ms,
            self.call_360p_ms,
            self.call_540p_ms,
            self.call_720p_ms,
            self.call_1080p_ms,
        ]

    def values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in Figures.names()}

    def minus(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) - getattr(other, name) for name in Figures.names()})

    def plus(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) + getattr(other, name) for name in Figures.names()})

    def is_zero(self) -> bool:
        return not any(self.values().values())

    def as_json(self) -> dict[str, object]:
        """The issue's JSON names (docs/billing.md)."""
        return {
            "callMs": {tier.label: ms for tier, ms in zip(Tier, self.call_ms(), strict=True)},
            "onlineMs": self.online_ms,
            "publishedStreamMs": self.published_stream_ms,
            "subscribedStreamMs": self.subscribed_stream_ms,
            "rooms": self.rooms,
            "peakRooms": self.peak_rooms,
            "onlineUsers": self.online_users,
            "callUsers": self.call_users,
            "peakOnlineUsers": self.peak_online_users,
            "peakCallUsers": self.peak_call_users,
            "billableMinutes": self.billable_minutes,
        }


def billable_minutes(call_ms: int) -> int:
    """Post-paid per minute (seed 002 5.4): the call milliseconds rounded up to whole minutes."""
    return -(-call_ms // MINUTE_MS)


def _clip(start: int, end: int | None, window: tuple[int, int], now_ms: int) -> tuple[int, int] | None:
    """The part of [start, end) inside the window; an interval still open lasts until `now_ms`."""
    low, high = window
    start, end = max(start, low), min(now_ms if end is None else end, high)
    return (start, end) if start < end else None


def merged(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of intervals as disjoint sorted intervals (touching ones joined)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _length(intervals: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in intervals)


def peak(intervals: Iterable[tuple[int, int]]) -> int:
    """The most intervals open at one instant; at equal times ends come before starts."""
    events = sorted(event for start, end in intervals for event in ((start, 1), (end, -1)))
    # (time, -1) sorts before (time, 1): a half-open interval has ended when the next one begins.
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def peak_distinct(by_uid: dict[str, list[tuple[int, int]]]) -> int:
    """The most distinct uids present at one instant (a uid's own overlapping intervals count once)."""
    return peak(interval for intervals in by_uid.values() for interval in merged(intervals))


def _tiered_call_ms(by_uid: dict[str, list[tuple[int, int, Tier]]]) -> list[int]:
    """Per uid, each instant they receive at least one stream counts once, in the highest tier received."""
    totals = [0] * len(Tier)
    for pieces in by_uid.values():
        events: list[tuple[int, int, int]] = []
        for start, end, tier in pieces:
            events.append((start, 1, tier))
            events.append((end, -1, tier))
        events.sort()
        open_by_tier = [0] * len(Tier)
        previous: int | None = None
        for time, step, level in events:
            if previous is not None and time > previous:
                for candidate in range(len(Tier) - 1, -1, -1):
                    if open_by_tier[candidate]:
                        totals[candidate] += time - previous
                        break
            open_by_tier[level] += step
            previous = time
    return totals


def _p2p_call_intervals(
    participants: list[Span], window: tuple[int, int], now_ms: int
) -> Iterator[tuple[str, tuple[int, int]]]:
    """P2P rooms send no media through the platform: a participant is in a call while at least one other
    participant is in the room with them (docs/billing.md)."""
    by_room: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for span in participants:
        if span.engine == P2P_ENGINE:
            clipped = _clip(span.start_ms, span.end_ms, window, now_ms)
            if clipped is not None:
                by_room[span.room_id].append((*clipped, span.uid))
    for stays in by_room.values():
        events = sorted(
            event
            for index, (start, end, _) in enumerate(stays)
            for event in ((start, 1, index), (end, -1, index))
        )
        present: set[int] = set()
        previous: int | None = None
        for time, step, index in events:
            if previous is not None and time > previous and len(present) >= 2:
                for other in present:
                    yield stays[other][2], (previous, time)
            if step > 0:
                present.add(index)
            else:
                present.discard(index)
            previous = time


def compute(inputs: UsageInputs, window: tuple[int, int], now_ms: int) -> Figures:
    """The figures of `inputs` within the half-open window [start_ms, end_ms) as known at `now_ms`."""
    figures = Figures()
    published: dict[str, list[tuple[int, int]]] = defaultdict(list)
    subscribed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    received: dict[str, list[tuple[int, int, Tier]]] = defaultdict(list)
    for piece in inputs.pieces:
        clipped = _clip(piece.start_ms, piece.end_ms, window, now_ms)
        if clipped is None:
            continue
        if piece.role is Role.PUBLICATION:
            published[piece.stream_id].append(clipped)
        else:
            subscribed[piece.stream_id].append(clipped)
            received[piece.uid].append((*clipped, piece.tier))
    for uid, interval in _p2p_call_intervals(inputs.participants, window, now_ms):
        received[uid].append((*interval, Tier.AUDIO))
    # A stream with audio and video counts once: its tracks' pieces are joined per stream.
    figures.published_stream_ms = sum(_length(merged(pieces)) for pieces in published.values())
    figures.subscribed_stream_ms = sum(_length(merged(pieces)) for pieces in subscribed.values())
    (
        figures.call_audio_ms,
        figures.call_360p_ms,
        figures.call_540p_ms,
        figures.call_720p_ms,
        figures.call_1080p_ms,
    ) = _tiered_call_ms(received)
    figures.billable_minutes = billable_minutes(sum(figures.call_ms()))

    room_intervals = []
    for room in inputs.rooms:
        clipped = _clip(room.start_ms, room.end_ms, window, now_ms)
        if clipped is not None:
            room_intervals.append(clipped)
        if window[0] <= room.start_ms < window[1]:
            figures.rooms += 1
    figures.peak_rooms = peak(room_intervals)

    online = _by_uid(inputs.sessions, window, now_ms)
    figures.online_ms = sum(_length(intervals) for intervals in online.values())
    figures.online_users = len(online)
    figures.peak_online_users = peak_distinct(online)
    in_rooms = _by_uid(inputs.participants, window, now_ms)
    figures.call_users = len(in_rooms)
    figures.peak_call_users = peak_distinct(in_rooms)
    return figures


def _by_uid(spans: list[Span], window: tuple[int, int], now_ms: int) -> dict[str, list[tuple[int, int]]]:
    by_uid: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for span in spans:
        clipped = _clip(span.start_ms, span.end_ms, window, now_ms)
        if clipped is not None:
            by_uid[span.uid].append(clipped)
    return by_uid
