"""The live rooms of this room manager. Rooms are live state: after a restart they are rebuilt from
clients rejoining and relays reporting, not read back from a database (see ARCHITECTURE.md)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.core.errors import INVALID_ARGUMENT, NOT_FOUND


@dataclass
class LiveRoom:
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class RoomRegistry:
    def __init__(self) -> None:
        self._rooms: dict[str, LiveRoom] = {}

    def create(self, *, biz_name: str, creator_uid: str) -> LiveRoom:
        if not biz_name or not creator_uid:
            raise INVALID_ARGUMENT("biz_name and creator_uid are required")
        room = LiveRoom(
            room_id=secrets.token_hex(8),
            rtoken=secrets.token_urlsafe(16),
            biz_name=biz_name,
            creator_uid=creator_uid,
        )
        self._rooms[room.room_id] = room
        return room

    def get(self, room_id: str) -> LiveRoom:
        room = self._rooms.get(room_id)
        if room is None:
            raise NOT_FOUND(f"room {room_id} does not exist")
        return room
