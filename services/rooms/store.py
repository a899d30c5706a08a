"""Where live room state is kept between operations: the seam for replicated room state.

Every operation of the room manager loads the rooms it acts on, applies the rules, and saves them when it
is done (also when a rule refused halfway: what it did stays done). Nothing relies on a record staying the
same Python object between operations, so a store may hand out copies: a replicated store (Redis, with
one owning replica per room) keeps each room's record under its key. `InProcessRoomStore` keeps them in
this process, the embedded default.
"""

from __future__ import annotations

from typing import Protocol

from services.rooms.state import RoomState


class RoomStore(Protocol):
    def load(self, room_id: str) -> RoomState | None: ...

    def save(self, state: RoomState) -> None: ...

    def delete(self, room_id: str) -> None: ...

    def room_ids(self) -> list[str]: ...

    def count(self) -> int: ...

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        """The rooms (sorted) where an invitation to the user waits for an answer."""
        ...


class InProcessRoomStore:
    def __init__(self) -> None:
        self._rooms: dict[str, RoomState] = {}
        # (biz_name, invitee uid) -> rooms with an invitation waiting, kept from the records saved.
        self._invited: dict[tuple[str, str], set[str]] = {}
        self._invitees: dict[str, set[str]] = {}

    def load(self, room_id: str) -> RoomState | None:
        return self._rooms.get(room_id)

    def save(self, state: RoomState) -> None:
        self._rooms[state.room_id] = state
        self._index_invitees(state.biz_name, state.room_id, set(state.invitations))

    def delete(self, room_id: str) -> None:
        state = self._rooms.pop(room_id, None)
        if state is not None:
            self._index_invitees(state.biz_name, room_id, set())

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def count(self) -> int:
        return len(self._rooms)

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        return sorted(self._invited.get((biz_name, uid), ()))

    def _index_invitees(self, biz_name: str, room_id: str, invitees: set[str]) -> None:
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
