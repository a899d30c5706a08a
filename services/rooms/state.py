"""A live room's state as plain records: its token, its participants (one per uid), their feeds and the
subscriptions to them, the negotiations in progress, and the invitations waiting for an answer.

`Room` (services/rooms/room.py) applies the rules to these records; a `RoomStore`
(services/rooms/store.py) keeps them between operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from parley.relay.v1 import media_pb2
from parley.rooms.v1 import rooms_pb2

from services.rooms.negotiations import Negotiations
from services.rooms.p2p import Engine


@dataclass
class Subscription:
    subscription_id: str
    uid: str
    session_id: str
    tracks: tuple[media_pb2.Track, ...]
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
    tracks: tuple[media_pb2.Track, ...]
    published_at: datetime
    # By subscriber uid: a uid subscribes to a feed once.
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # Kinds the publisher paused (muteLocalAudio / muteLocalVideo).
    muted: set[str] = field(default_factory=set)

    def ref(self) -> rooms_pb2.FeedRef:
        return rooms_pb2.FeedRef(uid=self.uid, feed_id=self.feed_id, tag=self.tag, media_type=self.media_type)


@dataclass
class Participant:
    uid: str
    session_id: str
    joined_at: datetime


@dataclass
class RoomState:
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: datetime
    record: rooms_pb2.RecordOptions
    # The relay serving the room's media; empty until its first publish or subscribe places it.
    relay_address: str = ""
    # Since when nobody is in the room (monotonic); None while someone is.
    empty_since: float | None = None
    # A device call's room: it lives as long as the call (the sides may join late, or rejoin), and the
    # call's end destroys it, not the empty-room grace.
    held_by_call: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    negotiations: Negotiations = field(default_factory=Negotiations)
    # Invitee uid -> inviter uid -> extra.
    invitations: dict[str, dict[str, str]] = field(default_factory=dict)
    # Chosen at creation, for the room's life (P2P rooms: services/rooms/p2p.py).
    engine: Engine = Engine.SFU
