"""What an operation of the room manager causes besides its answer: pushes to sessions (queued for the
gateways holding them), facts for the topics, and orders for the relays. The rules hand them to `Effects`
as they go; the service takes them with `RoomManager.outcome()` after every operation and sends them on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from services.rooms.changes import Change
from services.rooms.pushes import Push
from services.rooms.sessions import SessionBook


@dataclass(frozen=True)
class StopFeed:
    relay_address: str
    room_id: str
    feed_id: str


@dataclass(frozen=True)
class StopSubscription:
    relay_address: str
    room_id: str
    subscription_id: str


RelayOrder = StopFeed | StopSubscription


@dataclass
class Outcome:
    """What the operations since the last `outcome()` caused: gateways with pushes queued, facts, relay
    orders."""

    gateways: set[str] = field(default_factory=set)
    changes: list[Change] = field(default_factory=list)
    relay_orders: list[RelayOrder] = field(default_factory=list)


class Effects(Protocol):
    """Where the rules put what they cause."""

    def push(self, session_id: str, push: Push) -> None:
        """To one session, if it is still there."""
        ...

    def push_user(self, biz_name: str, uid: str, push: Push) -> None:
        """To every session of a user."""
        ...

    def record(self, change: Change) -> None: ...

    def order(self, order: RelayOrder) -> None: ...


class QueuedEffects:
    """Pushes join the queues of the sessions' gateways (services/rooms/sessions.py); facts and relay
    orders wait for `take()`."""

    def __init__(self, sessions: SessionBook) -> None:
        self._sessions = sessions
        self._outcome = Outcome()

    def push(self, session_id: str, push: Push) -> None:
        session = self._sessions.find(session_id)
        if session is not None:
            self._sessions.push(session, push)

    def push_user(self, biz_name: str, uid: str, push: Push) -> None:
        for session in self._sessions.sessions_of(biz_name, uid):
            self._sessions.push(session, push)

    def record(self, change: Change) -> None:
        self._outcome.changes.append(change)

    def order(self, order: RelayOrder) -> None:
        self._outcome.relay_orders.append(order)

    def take(self) -> Outcome:
        outcome, self._outcome = self._outcome, Outcome()
        outcome.gateways = self._sessions.ready_gateways()
        return outcome
