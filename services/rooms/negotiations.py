"""Publish and subscribe negotiations of a room: what a gateway is negotiating with the relay.

Each goes reserve -> negotiate -> complete, or is undone. The reservation counts against the participant's
limits and keeps the feed's (or subscription's) place while the gateway sends the client's offer to the
relay; completing records the feed or subscription; cancelling, leaving the room, the feed ending or the
deadline passing undoes it. A publish undone after the relay may have answered is stopped there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Negotiation:
    session_id: str
    uid: str
    feed_id: str
    # Monotonic: the sweep drops the negotiation at this time.
    deadline: float
    tag: str = ""
    media_type: int = 0
    # Where a publish is negotiated, to stop it there if it is dropped.
    relay_address: str = ""
    # Subscriptions of this subscriber to this feed that the relay reported closed before their completion
    # came: completing one of them is refused rather than a dead subscription recorded.
    closed_early: set[str] = field(default_factory=set)


@dataclass
class Negotiations:
    """A room's negotiations in progress: publishes by feed id, subscribes by (session id, feed id)."""

    publishing: dict[str, Negotiation] = field(default_factory=dict)
    subscribing: dict[tuple[str, str], Negotiation] = field(default_factory=dict)

    def publishes_of(self, session_id: str) -> int:
        return sum(1 for n in self.publishing.values() if n.session_id == session_id)

    def subscribes_of(self, session_id: str) -> int:
        return sum(1 for n in self.subscribing.values() if n.session_id == session_id)

    def take_publish(self, session_id: str, feed_id: str) -> Negotiation | None:
        """The session's publish of `feed_id`, no longer in progress; None when it is not (or not its)."""
        negotiation = self.publishing.get(feed_id)
        if negotiation is None or negotiation.session_id != session_id:
            return None
        return self.publishing.pop(feed_id)

    def take_subscribe(self, session_id: str, feed_id: str) -> Negotiation | None:
        return self.subscribing.pop((session_id, feed_id), None)

    def subscribing_to(self, feed_id: str, uid: str) -> list[Negotiation]:
        return [n for n in self.subscribing.values() if n.feed_id == feed_id and n.uid == uid]

    def drop_subscribes_to(self, feed_id: str) -> None:
        for key in [key for key, n in self.subscribing.items() if n.feed_id == feed_id]:
            del self.subscribing[key]

    def abandon(self, session_id: str) -> list[Negotiation]:
        """Drop the session's negotiations; the publishes dropped (to stop at their relay)."""
        publishes = [feed_id for feed_id, n in self.publishing.items() if n.session_id == session_id]
        for key in [key for key in self.subscribing if key[0] == session_id]:
            del self.subscribing[key]
        return [self.publishing.pop(feed_id) for feed_id in publishes]

    def expire(self, now: float) -> list[Negotiation]:
        """Drop the negotiations whose deadline passed; the publishes dropped (to stop at their relay)."""
        publishes = [feed_id for feed_id, n in self.publishing.items() if n.deadline <= now]
        for key in [key for key, n in self.subscribing.items() if n.deadline <= now]:
            del self.subscribing[key]
        return [self.publishing.pop(feed_id) for feed_id in publishes]
