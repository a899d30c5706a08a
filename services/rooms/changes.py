"""The facts the room manager reports, one record per event of proto/parley/rooms/v1/events.proto.

Rooms and participants go to `parley.room.v1`, feeds and subscriptions to `parley.feed.v1`, keyed by
room_id; device calls to `parley.call.v1`, keyed by call_id (a ringing call has no room yet).
services/rooms/facts.py publishes them in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.rooms.p2p import Engine
from services.rooms.pushes import ExitType, MediaCloseCode


@dataclass(frozen=True)
class RecordOptions:
    """Seed 002 InitRoomConfig: whether the server records the room, and how (for the recorder)."""

    default_record: bool = False
    # The seed's default: when recording cannot start, neither can the call.
    record_strong_depend: bool = True
    # The seed's recordParam object as JSON text; empty when none was given.
    record_param_json: str = ""


@dataclass(frozen=True)
class Track:
    """A track of a feed as the relay negotiated it."""

    kind: str  # "audio" or "video"
    codec: str  # its MIME type, e.g. video/VP8


@dataclass(frozen=True)
class RoomCreated:
    room_id: str
    biz_name: str
    creator_uid: str
    created_at: datetime
    record: RecordOptions
    engine: Engine = Engine.SFU


@dataclass(frozen=True)
class RoomDestroyed:
    room_id: str
    biz_name: str
    destroyed_at: datetime
    engine: Engine = Engine.SFU


@dataclass(frozen=True)
class ParticipantJoined:
    room_id: str
    biz_name: str
    uid: str
    session_id: str
    joined_at: datetime
    engine: Engine = Engine.SFU


@dataclass(frozen=True)
class ParticipantLeft:
    room_id: str
    biz_name: str
    uid: str
    session_id: str
    exit_type: ExitType
    joined_at: datetime
    left_at: datetime
    engine: Engine = Engine.SFU


@dataclass(frozen=True)
class FeedPublished:
    room_id: str
    biz_name: str
    feed_id: str
    uid: str
    tag: str
    media_type: int
    tracks: tuple[Track, ...]
    published_at: datetime


@dataclass(frozen=True)
class FeedUnpublished:
    room_id: str
    biz_name: str
    feed_id: str
    uid: str
    code: MediaCloseCode
    published_at: datetime
    unpublished_at: datetime


@dataclass(frozen=True)
class SubscriptionStarted:
    room_id: str
    biz_name: str
    feed_id: str
    subscription_id: str
    uid: str
    publisher_uid: str
    tracks: tuple[Track, ...]
    started_at: datetime


@dataclass(frozen=True)
class SubscriptionEnded:
    room_id: str
    biz_name: str
    feed_id: str
    subscription_id: str
    uid: str
    publisher_uid: str
    code: MediaCloseCode
    started_at: datetime
    ended_at: datetime


@dataclass(frozen=True)
class CallStarted:
    call_id: str
    biz_name: str
    sn: str
    open_id: str
    media: int
    started_at: datetime


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    biz_name: str
    sn: str
    open_id: str
    room_id: str
    answered_at: datetime


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    biz_name: str
    sn: str
    open_id: str
    room_id: str
    reason: str
    by: str
    keep_time_ms: int
    ended_at: datetime


CallChange = CallStarted | CallAnswered | CallEnded

Change = (
    RoomCreated
    | RoomDestroyed
    | ParticipantJoined
    | ParticipantLeft
    | FeedPublished
    | FeedUnpublished
    | SubscriptionStarted
    | SubscriptionEnded
    | CallStarted
    | CallAnswered
    | CallEnded
)
