"""Which media relay serves a room: relays register and report their load, a room is placed on the
least-loaded live relay that is not draining when it first needs media, and stays there while that relay
lives. A room whose relay stopped reporting (it died) is placed again on its next publish or subscribe
(`Room` first ends the streams it had there: docs/protocol.md, "A relay that dies").

Without a live relay to choose (none registered yet, or all draining or silent) a room goes to the
configured relay address, so a single machine works before its relay's registration arrives.

A relay reports to one room manager; with several, each shares what it heard (`heard`) through the room
store and takes in what the others heard (`learn`), so every room manager places rooms on every live relay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.core.errors import NOT_FOUND


@dataclass(frozen=True)
class RelayLoad:
    publications: int = 0
    subscriptions: int = 0
    draining: bool = False

    @property
    def streams(self) -> int:
        return self.publications + self.subscriptions


@dataclass
class RelayNode:
    relay_id: str
    address: str
    capacity: int
    load: RelayLoad
    last_report: float
    # Rooms placed here since the last report: the report does not show their streams yet, and counting
    # them keeps a burst of new rooms from all landing on the relay that was least loaded before it.
    fresh_rooms: int = 0

    def weight(self) -> float:
        return (self.load.streams + self.fresh_rooms) / self.capacity


class RelayPlacement:
    def __init__(self, *, fallback: str, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fallback = fallback
        self.lease_s = lease_s
        self._clock = clock
        self._relays: dict[str, RelayNode] = {}
        self._rooms: dict[str, str] = {}
        # Relays that registered or reported here since `heard` was last called.
        self._heard: set[str] = set()
        self.lead()

    def lead(self) -> None:
        """This room manager starts serving (at start, or taking over from one that died): no relay is
        judged dead for a lease from now. Until each relay has reported here, which it does within a
        third of a lease, silence says nothing, and a room on a live relay would be moved (its streams
        ended) because the report had not come yet."""
        self._judging_from = self._clock() + self.lease_s

    def register(self, relay_id: str, address: str, capacity: int, load: RelayLoad) -> None:
        """A relay (new, or again after the lease ran out or the room manager restarted) serves."""
        self._relays[relay_id] = RelayNode(relay_id, address, max(capacity, 1), load, self._clock())
        self._heard.add(relay_id)

    def report(self, relay_id: str, load: RelayLoad) -> None:
        self._expire()
        relay = self._relays.get(relay_id)
        if relay is None:
            raise NOT_FOUND(f"relay {relay_id} is not registered")
        relay.load, relay.last_report, relay.fresh_rooms = load, self._clock(), 0
        self._heard.add(relay_id)

    def heard(self) -> list[RelayNode]:
        """The relays heard from here since the last call, as last heard."""
        heard, self._heard = self._heard, set()
        return [self._relays[relay_id] for relay_id in sorted(heard) if relay_id in self._relays]

    def learn(self, relays: list[RelayNode]) -> None:
        """What other room managers heard: a relay's newer report replaces what is known here."""
        for relay in relays:
            known = self._relays.get(relay.relay_id)
            if known is None or relay.last_report > known.last_report:
                fresh_rooms = known.fresh_rooms if known is not None else 0
                self._relays[relay.relay_id] = RelayNode(
                    relay.relay_id, relay.address, relay.capacity, relay.load, relay.last_report, fresh_rooms
                )
        self._expire()

    def place(self, room_id: str) -> str:
        """The address of the relay serving `room_id`, choosing one the first time (and again when the
        one chosen is gone)."""
        address = self._rooms.get(room_id)
        if address is not None and self.is_live(address):
            return address
        self._expire()
        candidates = [relay for relay in self._relays.values() if not relay.load.draining]
        if candidates:
            # Ties go to the relay with fewer rooms of ours, then by id, so placement is predictable.
            chosen = min(candidates, key=lambda r: (r.weight(), self._rooms_on(r.address), r.relay_id))
            chosen.fresh_rooms += 1
            address = chosen.address
        else:
            address = self.fallback
        self._rooms[room_id] = address
        return address

    def is_live(self, address: str) -> bool:
        """False for a relay that stopped reporting while others report: its rooms move. While no relay
        reports, nothing better is known than the address a room has; nor for a lease after this room
        manager started to serve (`lead`)."""
        self._expire()
        if not self._relays or self._clock() < self._judging_from:
            return True
        return any(relay.address == address for relay in self._relays.values())

    def release(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def live(self) -> dict[str, RelayNode]:
        """The relays that reported within the lease, by id."""
        self._expire()
        return dict(self._relays)

    def _rooms_on(self, address: str) -> int:
        return sum(1 for placed in self._rooms.values() if placed == address)

    def _expire(self) -> None:
        deadline = self._clock() - self.lease_s
        for relay_id in [r.relay_id for r in self._relays.values() if r.last_report < deadline]:
            del self._relays[relay_id]
