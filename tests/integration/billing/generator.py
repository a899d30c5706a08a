"""A deterministic day of usage for many apps, rooms and users, and its ground truth.

The generator draws sessions, rooms (SFU and P2P), participants' stays, publications and subscriptions,
and cuts every published and subscribed track into metering ticks as the relay does (10 s pieces,
the last one shorter, a tier per piece). It emits the facts billing reads, as the services publish
them (protobuf payload, CloudEvents `ce_type` and `ce_id`; a tick's `ce_id` is the UUID5 of its id).

The ground truth is computed a different way from billing's sweep: every time is a multiple of a
granule (100 ms), and each figure is read off bitsets with one bit per granule of the day (big ints):
call time is the popcount of each user's tier bitset minus the higher tiers', a stream's time the
popcount of the OR of its pieces, and a peak the most bitsets set at one granule, tested at every
granule where an interval begins.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from parley.relay.v1 import media_pb2, metering_pb2
from parley.rooms.v1 import events_pb2 as room_events

from services.core.topics import Topic

GRANULE_MS = 100
TICK_MS = 10_000
TICK_NAMESPACE = uuid.UUID("1d4e5b0c-7f0a-5d43-9c53-7a1c2b5e8f60")
VIDEO_TIERS = [
    media_pb2.RESOLUTION_TIER_360P,
    media_pb2.RESOLUTION_TIER_540P,
    media_pb2.RESOLUTION_TIER_720P,
    media_pb2.RESOLUTION_TIER_1080P,
    media_pb2.RESOLUTION_TIER_ABOVE_1080P,
]
# Billing's tier index (audio 0 ... 1080P 4) of a relay tier; above 1080P is billed as 1080P.
TIER_INDEX = {
    media_pb2.RESOLUTION_TIER_AUDIO: 0,
    media_pb2.RESOLUTION_TIER_360P: 1,
    media_pb2.RESOLUTION_TIER_540P: 2,
    media_pb2.RESOLUTION_TIER_720P: 3,
    media_pb2.RESOLUTION_TIER_1080P: 4,
    media_pb2.RESOLUTION_TIER_ABOVE_1080P: 4,
}
TIER_LABELS = ["audio", "360P", "540P", "720P", "1080P"]


@dataclass(frozen=True)
class Fact:
    topic: str
    key: str
    ce_type: str
    ce_id: str
    payload: bytes


@dataclass
class Truth:
    call_ms: list[int] = field(default_factory=lambda: [0] * 5)
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

    def as_json(self) -> dict[str, Any]:
        """The figures as the HTTP API answers them."""
        return {
            "callMs": dict(zip(TIER_LABELS, self.call_ms, strict=True)),
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


@dataclass
class Scenario:
    day: date
    facts: list[Fact]
    truth: dict[str, Truth]
    ticks: int


def _stamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _fact(topic: Topic, key: str, message: Message, ce_id: str | None = None) -> Fact:
    return Fact(
        topic.value,
        key,
        message.DESCRIPTOR.full_name,
        ce_id or str(uuid.uuid4()),
        message.SerializeToString(),
    )


class _Grid:
    """Bitsets over one day, one bit per granule."""

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms

    def bits(self, start_ms: int, end_ms: int | None) -> int:
        start = max(start_ms, self.start_ms)
        end = min(self.end_ms if end_ms is None else end_ms, self.end_ms)
        if start >= end:
            return 0
        low, high = (start - self.start_ms) // GRANULE_MS, (end - self.start_ms) // GRANULE_MS
        return ((1 << (high - low)) - 1) << low

    def first_granules(self, intervals: list[tuple[int, int | None]]) -> set[int]:
        return {
            (max(start, self.start_ms) - self.start_ms) // GRANULE_MS
            for start, end in intervals
            if self.bits(start, end)
        }


def _peak(bitsets: list[int], probes: set[int]) -> int:
    return max((sum(1 for bits in bitsets if bits >> probe & 1) for probe in probes), default=0)


@dataclass
class _Stream:
    uid: str
    stream_id: str
    role: int
    feed_id: str
    start_ms: int
    end_ms: int
    with_video: bool


def generate(
    seed: int, day: date, *, apps: int = 3, users: int = 10, rooms: int = 4, tag: str = ""
) -> Scenario:
    """`tag` starts every bizName, so runs on one broker keep their apps apart."""
    rng = random.Random(seed)
    day_start = int(datetime.combine(day, time(), tzinfo=UTC).timestamp() * 1000)
    day_end = day_start + 86_400_000
    grid = _Grid(day_start, day_end)

    def moment(low: int, high: int) -> int:
        return low + rng.randrange((high - low) // GRANULE_MS) * GRANULE_MS

    facts: list[Fact] = []
    truth: dict[str, Truth] = {}
    tick_count = 0
    for app_index in range(apps):
        biz = f"{tag}biz{seed}x{app_index}"
        figures = Truth()
        truth[biz] = figures
        uids = [f"u{app_index}_{n}" for n in range(users)]

        # Sessions: some began the day before, some are still open when the day ends.
        online: dict[str, int] = {}
        session_intervals: list[tuple[int, int | None]] = []
        for uid in uids:
            for _ in range(rng.randint(1, 2)):
                opened = moment(day_start - 3_600_000, day_end - 3_600_000)
                closed = (
                    None
                    if rng.random() < 0.15
                    else moment(opened + GRANULE_MS, min(opened + 8 * 3_600_000, day_end + 3_600_000))
                )
                session_id = str(uuid.uuid4())
                facts.append(
                    _fact(
                        Topic.SESSION,
                        session_id,
                        room_events.SessionOpened(
                            session_id=session_id,
                            biz_name=biz,
                            uid=uid,
                            gateway="127.0.0.1:1",
                            opened_at=_stamp(opened),
                        ),
                    )
                )
                if closed is not None:
                    facts.append(
                        _fact(
                            Topic.SESSION,
                            session_id,
                            room_events.SessionClosed(
                                session_id=session_id,
                                biz_name=biz,
                                uid=uid,
                                gateway="127.0.0.1:1",
                                opened_at=_stamp(opened),
                                closed_at=_stamp(closed),
                            ),
                        )
                    )
                bits = grid.bits(opened, closed)
                if bits:
                    figures.online_ms += bits.bit_count() * GRANULE_MS
                    online[uid] = online.get(uid, 0) | bits
                    session_intervals.append((opened, closed))
        figures.online_users = len(online)
        figures.peak_online_users = _peak(list(online.values()), grid.first_granules(session_intervals))

        room_bits: list[int] = []
        room_intervals: list[tuple[int, int | None]] = []
        in_rooms: dict[str, int] = {}
        stay_intervals: list[tuple[int, int | None]] = []
        # Per uid and tier, the granules they receive at least one stream of that tier.
        received: dict[str, list[int]] = {uid: [0] * 5 for uid in uids}
        for room_index in range(rooms):
            room_id = f"{tag}r{seed}x{app_index}x{room_index}"
            engine = 2 if room_index == 0 else 0
            created = moment(day_start - 1_800_000, day_end - 1_800_000)
            destroyed = None if rng.random() < 0.2 else moment(created + 600_000, created + 4 * 3_600_000)
            facts.append(
                _fact(
                    Topic.ROOM,
                    room_id,
                    room_events.RoomCreated(
                        room_id=room_id,
                        biz_name=biz,
                        creator_uid=uids[0],
                        created_at=_stamp(created),
                        engine=engine,
                    ),
                )
            )
            if destroyed is not None:
                facts.append(
                    _fact(
                        Topic.ROOM,
                        room_id,
                        room_events.RoomDestroyed(
                            room_id=room_id, biz_name=biz, destroyed_at=_stamp(destroyed), engine=engine
                        ),
                    )
                )
            if day_start <= created < day_end:
                figures.rooms += 1
            if grid.bits(created, destroyed):
                room_bits.append(grid.bits(created, destroyed))
                room_intervals.append((created, destroyed))
            room_end = destroyed if destroyed is not None else created + 4 * 3_600_000
            # Calls stay within the day, so a month's statement holds this day's call time alone.
            call_low, call_high = max(created, day_start), min(room_end, day_end)
            members = (
                rng.sample(uids, 2 if engine == 2 else rng.randint(2, 4))
                if call_high - call_low > 600_000
                else []
            )
            stays: list[tuple[str, int, int]] = []
            for uid in members:
                for _ in range(1 if engine == 2 else rng.randint(1, 2)):
                    joined = moment(call_low, call_high - 300_000)
                    left = moment(joined + GRANULE_MS, call_high)
                    session_id = str(uuid.uuid4())
                    facts.append(
                        _fact(
                            Topic.ROOM,
                            room_id,
                            room_events.ParticipantJoined(
                                room_id=room_id,
                                biz_name=biz,
                                uid=uid,
                                session_id=session_id,
                                joined_at=_stamp(joined),
                                engine=engine,
                            ),
                        )
                    )
                    facts.append(
                        _fact(
                            Topic.ROOM,
                            room_id,
                            room_events.ParticipantLeft(
                                room_id=room_id,
                                biz_name=biz,
                                uid=uid,
                                session_id=session_id,
                                exit_type=1,
                                joined_at=_stamp(joined),
                                left_at=_stamp(left),
                                engine=engine,
                            ),
                        )
                    )
                    stays.append((uid, joined, left))
                    bits = grid.bits(joined, left)
                    if bits:
                        in_rooms[uid] = in_rooms.get(uid, 0) | bits
                        stay_intervals.append((joined, left))
            if engine == 2:
                # P2P: in a call while another participant is in the room (docs/billing.md), as audio.
                for index, (uid, joined, left) in enumerate(stays):
                    others = 0
                    for other_index, (_, other_joined, other_left) in enumerate(stays):
                        if other_index != index:
                            others |= grid.bits(other_joined, other_left)
                    received[uid][0] |= grid.bits(joined, left) & others
                continue
            streams: list[_Stream] = []
            for uid, joined, left in stays:
                if left - joined < 2 * GRANULE_MS:
                    continue
                start = moment(joined, left - GRANULE_MS)
                end = moment(start + GRANULE_MS, left)
                feed_id = str(uuid.uuid4())
                with_video = rng.random() < 0.8
                streams.append(
                    _Stream(
                        uid,
                        str(uuid.uuid4()),
                        metering_pb2.STREAM_ROLE_PUBLICATION,
                        feed_id,
                        start,
                        end,
                        with_video,
                    )
                )
                for other_uid, other_joined, other_left in stays:
                    low, high = max(start, other_joined), min(end, other_left)
                    if other_uid == uid or high - low < 2 * GRANULE_MS:
                        continue
                    # Subscriptions cover much of what both could see, so tiers overlap often.
                    sub_start = moment(low, low + (high - low) // 3 // GRANULE_MS * GRANULE_MS + GRANULE_MS)
                    half = (high - sub_start) // 2 // GRANULE_MS * GRANULE_MS
                    sub_end = moment(sub_start + half + GRANULE_MS, high + GRANULE_MS)
                    streams.append(
                        _Stream(
                            other_uid,
                            str(uuid.uuid4()),
                            metering_pb2.STREAM_ROLE_SUBSCRIPTION,
                            feed_id,
                            sub_start,
                            sub_end,
                            with_video,
                        )
                    )
            for stream in streams:
                union = 0
                kinds = [media_pb2.MEDIA_KIND_AUDIO] + (
                    [media_pb2.MEDIA_KIND_VIDEO] if stream.with_video else []
                )
                for kind in kinds:
                    # The video track's first frame comes a little after the audio's.
                    begin = (
                        stream.start_ms
                        if kind == media_pb2.MEDIA_KIND_AUDIO
                        else min(
                            stream.start_ms + rng.randrange(0, 20) * GRANULE_MS, stream.end_ms - GRANULE_MS
                        )
                    )
                    sequence = 0
                    piece_start = begin
                    while piece_start < stream.end_ms:
                        piece_end = min(piece_start + TICK_MS, stream.end_ms)
                        sequence += 1
                        tier = (
                            media_pb2.RESOLUTION_TIER_AUDIO
                            if kind == media_pb2.MEDIA_KIND_AUDIO
                            else rng.choice(VIDEO_TIERS)
                        )
                        kind_name = "audio" if kind == media_pb2.MEDIA_KIND_AUDIO else "video"
                        tick_id = f"{stream.stream_id}:{kind_name}:{sequence}"
                        tick = metering_pb2.MeteringTick(
                            tick_id=tick_id,
                            biz_name=biz,
                            room_id=room_id,
                            uid=stream.uid,
                            feed_id=stream.feed_id,
                            role=stream.role,
                            stream_id=stream.stream_id,
                            kind=kind,
                            tier=tier,
                            duration_ms=piece_end - piece_start,
                            bytes=rng.randrange(1000, 100_000),
                            sequence=sequence,
                            final=piece_end == stream.end_ms,
                            start_time=_stamp(piece_start),
                            end_time=_stamp(piece_end),
                        )
                        facts.append(
                            _fact(Topic.METERING, room_id, tick, str(uuid.uuid5(TICK_NAMESPACE, tick_id)))
                        )
                        tick_count += 1
                        bits = grid.bits(piece_start, piece_end)
                        union |= bits
                        if stream.role == metering_pb2.STREAM_ROLE_SUBSCRIPTION:
                            received[stream.uid][TIER_INDEX[tier]] |= bits
                        piece_start = piece_end
                if stream.role == metering_pb2.STREAM_ROLE_PUBLICATION:
                    figures.published_stream_ms += union.bit_count() * GRANULE_MS
                else:
                    figures.subscribed_stream_ms += union.bit_count() * GRANULE_MS
        figures.peak_rooms = _peak(room_bits, grid.first_granules(room_intervals))
        figures.call_users = len(in_rooms)
        figures.peak_call_users = _peak(list(in_rooms.values()), grid.first_granules(stay_intervals))
        for tiers in received.values():
            higher = 0
            for index in range(4, -1, -1):
                figures.call_ms[index] += (tiers[index] & ~higher).bit_count() * GRANULE_MS
                higher |= tiers[index]
        figures.billable_minutes = -(-sum(figures.call_ms) // 60_000)
    return Scenario(day, facts, truth, tick_count)


def shuffled_with_duplicates(facts: list[Fact], seed: int, fraction: float = 0.3) -> list[Fact]:
    """Every fact once, `fraction` of them twice, all in a random order."""
    rng = random.Random(seed)
    delivered = facts + rng.sample(facts, int(len(facts) * fraction))
    rng.shuffle(delivered)
    return delivered
