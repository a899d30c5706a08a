"""A live room: its token, its participants (one per uid), their feeds and the subscriptions to them, and
the invitations waiting for an answer. Plain records; `RoomManager` keeps them consistent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.rooms.changes import RecordOptions, Track
from services.rooms.p2p import Engine
from services.rooms.pushes import FeedInfo, ParticipantInfo


@dataclass
class Subscription:
    subscription_id: str
    uid: str
    session_id: str
    tracks: tuple[Track, ...]
    started_at: datetime
    # Kinds the subscriber paused (muteRemoteAudio / muteRemoteVideo).
    muted: set[str] = field(default_factory=set)


@dataclass
class Feed:
    feed_id: str
    uid: str
    session_id: str
    tag: str
    media_type: int
    tracks: tuple[Track, ...]
    published_at: datetime
    # By subscriber uid: a uid subscribes to a feed once.
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # Kinds the publisher paused (muteLocalAudio / muteLocalVideo).
    muted: set[str] = field(default_factory=set)

    def info(self) -> FeedInfo:
        return FeedInfo(uid=self.uid, feed_id=self.feed_id, tag=self.tag, media_type=self.media_type)


@dataclass
class Participant:
    uid: str
    session_id: str
    joined_at: datetime


@dataclass
class Negotiation:
    """A publish or subscribe the gateway is negotiating with the relay: it counts against the limits and
    keeps its place until the gateway completes or cancels it, or until `deadline`."""

    session_id: str
    uid: str
    room_id: str
    feed_id: str
    deadline: float
    tag: str = ""
    media_type: int = 0
    # Where a publish is negotiated, to stop it there if it is dropped, even after its room is gone.
    relay_address: str = ""


@dataclass
class Room:
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: datetime
    record: RecordOptions
    # The relay serving the room's media; empty until its first publish or subscribe places it.
    relay_address: str = ""
    # Since when nobody is in the room (monotonic); None while someone is.
    empty_since: float | None = None
    # A device call's room: it lives as long as the call (the sides may join late, or rejoin), and the
    # call's end destroys it, not the empty-room grace.
    held_by_call: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    # Invitee uid -> inviter uid -> extra.
    invitations: dict[str, dict[str, str]] = field(default_factory=dict)
    # Chosen at creation, for the room's life (P2P rooms: services/rooms/p2p.py).
    engine: Engine = Engine.SFU

    def feeds_of(self, uid: str) -> list[Feed]:
        return [feed for feed in self.feeds.values() if feed.uid == uid]

    def subscriptions_of(self, uid: str) -> list[tuple[Feed, Subscription]]:
        return [(feed, feed.subscriptions[uid]) for feed in self.feeds.values() if uid in feed.subscriptions]

    def attendance(self, *, without: str) -> tuple[ParticipantInfo, ...]:
        return tuple(
            ParticipantInfo(uid=uid, feeds=tuple(feed.info() for feed in self.feeds_of(uid)))
            for uid in self.participants
            if uid != without
        )
