"""Where live room state is kept between operations: the seam for replicated room state.

Every operation of the room manager loads the rooms it acts on, applies the rules, and saves them when it
is done (also when a rule refused halfway: what it did stays done). Nothing relies on a record staying the
same Python object between operations, so a store may hand out copies: a replicated store (Redis, with
one owning replica per room) keeps each room's record under its key. `InProcessRoomStore` keeps them in
this process, the embedded default. Device calls are kept the same way (`CallBook`), and what a client
session is (`SessionRecords`: its backlog is the process's).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Protocol

from services.rooms.calls import Call, CallBook, LineIndex
from services.rooms.facts import FactOutbox, StagedFact
from services.rooms.placement import RelayNode
from services.rooms.sessions import ClientSession
from services.rooms.state import RoomState


class SessionRecords(Protocol):
    def save_session(self, session: ClientSession) -> None: ...

    def delete_session(self, session_id: str) -> None: ...

    def taken_sessions(self) -> list[ClientSession]:
        """The sessions of a room manager that died, taken over since the last call (with its rooms)."""
        ...


class RoomStore(CallBook, SessionRecords, FactOutbox, Protocol):
    def load(self, room_id: str) -> RoomState | None: ...

    def save(self, state: RoomState) -> None: ...

    def delete(self, room_id: str) -> None: ...

    def room_ids(self) -> list[str]: ...

    def count(self) -> int: ...

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        """The rooms (sorted) where an invitation to the user waits for an answer."""
        ...

    async def lead(self) -> None:
        """Return once this room manager may serve: the leader of the room managers on the store (at start,
        before gRPC listens; docs/decisions.md)."""
        ...

    async def resign(self) -> None:
        """Let another room manager lead at once (at a graceful stop)."""
        ...

    async def recover(self) -> None:
        """Take up the rooms and calls a previous room manager left in the store (at start)."""
        ...

    async def keep(self) -> None:
        """Keep this room manager's hold on its rooms and calls, and take up those another left (run
        periodically)."""
        ...

    async def share_relays(self, heard: list[RelayNode], lease_s: float) -> list[RelayNode]:
        """Tell the other room managers of the relays heard here; the relays they heard from within the
        lease (services/rooms/placement.py)."""
        ...

    async def commit(self, facts: Sequence[StagedFact] = ()) -> None:
        """Make what was saved and deleted since the last commit durable, in that order, and stage `facts`
        in the outbox with it, all or nothing (services/rooms/facts.py). The service calls it after each
        operation, before it sends on what the operation caused: nothing is told that the store could
        still lose. What was saved before the call is committed, whatever comes during it."""
        ...


class InviteeIndex:
    """(biz_name, invitee uid) -> rooms with an invitation waiting, kept from the records saved."""

    def __init__(self) -> None:
        self._invited: dict[tuple[str, str], set[str]] = {}
        self._invitees: dict[str, set[str]] = {}

    def rooms_of(self, biz_name: str, uid: str) -> list[str]:
        return sorted(self._invited.get((biz_name, uid), ()))

    def index(self, biz_name: str, room_id: str, invitees: set[str]) -> None:
        before = self._invitees.get(room_id, set())
        for uid in before - invitees:
            rooms = self._invited[(biz_name, uid)]
            rooms.discard(room_id)
            if not rooms:
                del self._invited[(biz_name, uid)]
        for uid in invitees - before:
            self._invited.setdefault((biz_name, uid), set()).add(room_id)
        if invitees:
            self._invitees[room_id] = invitees
        else:
            self._invitees.pop(room_id, None)


class InProcessRoomStore:
    """The embedded default: the records live in this process and die with it."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomState] = {}
        self._invitees = InviteeIndex()
        self._outbox: deque[StagedFact] = deque()
        self._calls: dict[str, Call] = {}
        self._lines = LineIndex()

    def load(self, room_id: str) -> RoomState | None:
        return self._rooms.get(room_id)

    def save(self, state: RoomState) -> None:
        self._rooms[state.room_id] = state
        self._invitees.index(state.biz_name, state.room_id, set(state.invitations))

    def delete(self, room_id: str) -> None:
        state = self._rooms.pop(room_id, None)
        if state is not None:
            self._invitees.index(state.biz_name, room_id, set())

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def count(self) -> int:
        return len(self._rooms)

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        return self._invitees.rooms_of(biz_name, uid)

    def load_call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def save_call(self, call: Call) -> None:
        self._calls[call.call_id] = call
        self._lines.index(call)

    def delete_call(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._lines.forget(call)

    def call_ids(self) -> list[str]:
        return list(self._calls)

    def call_on_line(self, biz_name: str, uid: str) -> str | None:
        return self._lines.on_line(biz_name, uid)

    def save_session(self, session: ClientSession) -> None:
        """The session book (services/rooms/sessions.py) is in this process already."""

    def delete_session(self, session_id: str) -> None:
        """Nothing was kept."""

    def taken_sessions(self) -> list[ClientSession]:
        return []

    async def share_relays(self, heard: list[RelayNode], lease_s: float) -> list[RelayNode]:
        """No other room manager to tell."""
        return []

    async def lead(self) -> None:
        """The only room manager there is."""

    async def resign(self) -> None:
        """Nobody to hand over to."""

    async def recover(self) -> None:
        """Nothing outlives the process."""

    async def keep(self) -> None:
        """One room manager holds every room."""

    async def commit(self, facts: Sequence[StagedFact] = ()) -> None:
        """Saved is as durable as this store gets; the facts wait here for the broker."""
        self._outbox.extend(facts)

    async def staged_facts(self, limit: int) -> list[StagedFact]:
        return list(islice(self._outbox, limit))

    async def facts_published(self, count: int) -> None:
        for _ in range(count):
            self._outbox.popleft()
