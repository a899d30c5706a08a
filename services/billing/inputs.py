"""What billing reads from its topics, turned into ledger rows with stable ids.

Every input is keyed by an id that the same fact always has, however it is delivered: a tick by its
`tick_id`; a room by its room_id; a participant's stay by room, session and join time; a client session
by its session_id (a resumed session is the same session). A start fact and an end fact of one span
fill the two ends of one row, whichever comes first; the end facts carry the start too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from parley.relay.v1 import media_pb2, metering_pb2
from parley.rooms.v1 import events_pb2 as room_events

from services.billing.figures import Role, Tier

_TIERS = {
    media_pb2.RESOLUTION_TIER_AUDIO: Tier.AUDIO,
    media_pb2.RESOLUTION_TIER_360P: Tier.P360,
    media_pb2.RESOLUTION_TIER_540P: Tier.P540,
    media_pb2.RESOLUTION_TIER_720P: Tier.P720,
    media_pb2.RESOLUTION_TIER_1080P: Tier.P1080,
    # The seed's highest tier is 1080P; larger pictures are billed there (docs/billing.md).
    media_pb2.RESOLUTION_TIER_ABOVE_1080P: Tier.P1080,
}
_ROLES = {
    metering_pb2.STREAM_ROLE_PUBLICATION: Role.PUBLICATION,
    metering_pb2.STREAM_ROLE_SUBSCRIPTION: Role.SUBSCRIPTION,
}


def _ms(stamp: Timestamp) -> int:
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def _tier(tick: metering_pb2.MeteringTick) -> Tier:
    if tick.kind == media_pb2.MEDIA_KIND_AUDIO:
        return Tier.AUDIO
    # Video before its first key frame has no size yet: the lowest video tier.
    return _TIERS.get(tick.tier, Tier.P360)


@dataclass(slots=True)
class SpanFact:
    span_id: str
    kind: str
    biz_name: str
    room_id: str
    uid: str
    engine: int
    start_ms: int | None
    end_ms: int | None

    def merge(self, other: SpanFact) -> None:
        self.start_ms = self.start_ms if self.start_ms is not None else other.start_ms
        self.end_ms = other.end_ms if other.end_ms is not None else self.end_ms
        # RoomDestroyed names no creator.
        self.uid = self.uid or other.uid


@dataclass
class Batch:
    """What one transaction writes: rows (duplicates folded) and where each partition's reading ends."""

    ticks: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: dict[str, SpanFact] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, ce_type: str, payload: bytes) -> bool:
        """Add one event's row; False when the event is not billing's (or cannot be read)."""
        decoder = _DECODERS.get(ce_type)
        if decoder is None:
            return False
        try:
            decoded = decoder(payload)
        except DecodeError:
            return False
        if isinstance(decoded, SpanFact):
            known = self.spans.get(decoded.span_id)
            if known is None:
                self.spans[decoded.span_id] = decoded
            else:
                known.merge(decoded)
        else:
            self.ticks.setdefault(decoded["tick_id"], decoded)
        return True

    def biz_names(self) -> set[str]:
        return {row["biz_name"] for row in self.ticks.values()} | {
            fact.biz_name for fact in self.spans.values()
        }

    def __len__(self) -> int:
        return len(self.ticks) + len(self.spans)


# A tick row's columns (the ledger inserts ticks as tuples in this order).
TICK_COLUMNS = (
    "tick_id",
    "biz_name",
    "room_id",
    "uid",
    "stream_id",
    "role",
    "tier",
    "start_ms",
    "end_ms",
    "bytes",
)


def _tick(payload: bytes) -> dict[str, Any]:
    tick = metering_pb2.MeteringTick.FromString(payload)
    return {
        "tick_id": tick.tick_id,
        "biz_name": tick.biz_name,
        "room_id": tick.room_id,
        "uid": tick.uid,
        "stream_id": tick.stream_id,
        "role": int(_ROLES.get(tick.role, Role.SUBSCRIPTION)),
        "tier": int(_tier(tick)),
        "start_ms": _ms(tick.start_time),
        "end_ms": _ms(tick.end_time),
        "bytes": tick.bytes,
    }


def _room_created(payload: bytes) -> SpanFact:
    event = room_events.RoomCreated.FromString(payload)
    return SpanFact(
        f"room:{event.room_id}",
        "room",
        event.biz_name,
        event.room_id,
        event.creator_uid,
        event.engine,
        _ms(event.created_at),
        None,
    )


def _room_destroyed(payload: bytes) -> SpanFact:
    event = room_events.RoomDestroyed.FromString(payload)
    return SpanFact(
        f"room:{event.room_id}",
        "room",
        event.biz_name,
        event.room_id,
        "",
        event.engine,
        None,
        _ms(event.destroyed_at),
    )


def _stay_id(room_id: str, session_id: str, joined: Timestamp) -> str:
    return f"participant:{room_id}:{session_id}:{_ms(joined)}"


def _participant_joined(payload: bytes) -> SpanFact:
    event = room_events.ParticipantJoined.FromString(payload)
    return SpanFact(
        _stay_id(event.room_id, event.session_id, event.joined_at),
        "participant",
        event.biz_name,
        event.room_id,
        event.uid,
        event.engine,
        _ms(event.joined_at),
        None,
    )


def _participant_left(payload: bytes) -> SpanFact:
    event = room_events.ParticipantLeft.FromString(payload)
    return SpanFact(
        _stay_id(event.room_id, event.session_id, event.joined_at),
        "participant",
        event.biz_name,
        event.room_id,
        event.uid,
        event.engine,
        _ms(event.joined_at),
        _ms(event.left_at),
    )


def _session_opened(payload: bytes) -> SpanFact:
    event = room_events.SessionOpened.FromString(payload)
    return SpanFact(
        f"session:{event.session_id}", "session", event.biz_name, "", event.uid, 0, _ms(event.opened_at), None
    )


def _session_closed(payload: bytes) -> SpanFact:
    event = room_events.SessionClosed.FromString(payload)
    return SpanFact(
        f"session:{event.session_id}",
        "session",
        event.biz_name,
        "",
        event.uid,
        0,
        _ms(event.opened_at),
        _ms(event.closed_at),
    )


_DECODERS: dict[str, Any] = {
    metering_pb2.MeteringTick.DESCRIPTOR.full_name: _tick,
    room_events.RoomCreated.DESCRIPTOR.full_name: _room_created,
    room_events.RoomDestroyed.DESCRIPTOR.full_name: _room_destroyed,
    room_events.ParticipantJoined.DESCRIPTOR.full_name: _participant_joined,
    room_events.ParticipantLeft.DESCRIPTOR.full_name: _participant_left,
    room_events.SessionOpened.DESCRIPTOR.full_name: _session_opened,
    room_events.SessionClosed.DESCRIPTOR.full_name: _session_closed,
}
