"""A subscription on the relay: a subscriber's peer connection forwarding tracks of one feed.

Its tracks join the feed when the subscriber's link connects, not when it is negotiated: frames that
arrive before the sender can send would only queue up as latency, and the key frame the relay asks
the publisher for at that moment is the one the subscriber starts with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.relay.close_codes import CloseCode
from services.relay.errors import TRACK_NOT_FOUND
from services.relay.feed import Feed, FeedTrack
from services.relay.forwarded_track import ForwardedTrack
from services.relay.forwarding_sender import ForwardingSender
from services.relay.peer import Peer


@dataclass(eq=False)
class ForwardedMedia:
    source: FeedTrack
    track: ForwardedTrack
    sender: ForwardingSender


@dataclass(eq=False)
class Subscription:
    biz_name: str
    room_id: str
    uid: str
    subscription_id: str
    feed: Feed
    peer: Peer
    media: list[ForwardedMedia] = field(default_factory=list)
    on_closed: list[Callable[[Subscription, CloseCode], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.peer.on_connected(self._connected)
        self.peer.on_closed(self._closed)

    async def close(self, code: CloseCode) -> None:
        await self.peer.close(code)

    def set_paused(self, kind: str, paused: bool) -> None:
        media = next((media for media in self.media if media.source.kind == kind), None)
        if media is None:
            raise TRACK_NOT_FOUND(f"subscription {self.subscription_id!r} forwards no {kind}")
        media.track.set_paused(paused)

    def _connected(self) -> None:
        for media in self.media:
            media.source.attach(media.track)

    def _closed(self, code: CloseCode) -> None:
        for media in self.media:
            media.source.detach(media.track)
            media.track.finish()
        for handler in self.on_closed:
            handler(self, code)
