"""Live room state in Redis, so that it outlives the room manager that made it (docs/decisions.md).

The rules stay synchronous and never wait on the network in the middle of an operation: this store keeps
the records of the rooms this room manager serves as encoded JSON in memory (every load decodes a fresh
copy, so nothing relies on a record staying the same object), notes what each operation saved or deleted,
and `commit` writes that to Redis in one MULTI/EXEC transaction before the service sends on what the
operation caused. A room manager that starts (`recover`) reads back the rooms a previous one left.

Keys, under the store's prefix: `room:<id>` the record (services/rooms/room_codec.py), `rooms` the set of
room ids.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from services.rooms import room_codec
from services.rooms.state import RoomState
from services.rooms.store import InviteeIndex


class RedisRoomStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "parley:rooms:") -> None:
        self._redis = client
        self._prefix = prefix
        self._rooms: dict[str, bytes] = {}
        self._invitees = InviteeIndex()
        # Room id -> its record to write, or None to delete it; in the order of the operations.
        self._pending: dict[str, bytes | None] = {}
        # Commits reach Redis in the order they were taken.
        self._commit_lock = asyncio.Lock()

    def load(self, room_id: str) -> RoomState | None:
        data = self._rooms.get(room_id)
        return room_codec.decode(data) if data is not None else None

    def save(self, state: RoomState) -> None:
        data = room_codec.encode(state)
        self._rooms[state.room_id] = data
        self._pending[state.room_id] = data
        self._invitees.index(state.biz_name, state.room_id, set(state.invitations))

    def delete(self, room_id: str) -> None:
        data = self._rooms.pop(room_id, None)
        if data is None:
            return
        self._pending[room_id] = None
        self._invitees.index(room_codec.decode(data).biz_name, room_id, set())

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def count(self) -> int:
        return len(self._rooms)

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        return self._invitees.rooms_of(biz_name, uid)

    async def recover(self) -> None:
        members = await self._redis.smembers(self._key("rooms"))  # type: ignore[misc]
        room_ids = sorted(_text(member) for member in members)
        if not room_ids:
            return
        records = await self._redis.mget([self._room_key(room_id) for room_id in room_ids])
        for data in records:
            # A room deleted between the two reads is gone.
            if data is not None:
                state = room_codec.decode(data)
                self._rooms[state.room_id] = _bytes(data)
                self._invitees.index(state.biz_name, state.room_id, set(state.invitations))

    async def commit(self) -> None:
        # Taken before any wait, so a commit holds exactly what was saved before it was called.
        writes, self._pending = self._pending, {}
        if not writes:
            return
        async with self._commit_lock:
            try:
                await self._write(writes)
            except Exception:
                # The next commit writes them again, under what was saved since.
                self._pending = writes | self._pending
                raise

    async def _write(self, writes: dict[str, bytes | None]) -> None:
        async with self._redis.pipeline(transaction=True) as transaction:
            for room_id, data in writes.items():
                if data is None:
                    transaction.delete(self._room_key(room_id))
                    transaction.srem(self._key("rooms"), room_id)
                else:
                    transaction.set(self._room_key(room_id), data)
                    transaction.sadd(self._key("rooms"), room_id)
            await transaction.execute()

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _room_key(self, room_id: str) -> str:
        return self._key(f"room:{room_id}")


# The client is not told to decode responses, so replies are bytes; its type stubs allow str as well.
def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def _bytes(reply: bytes | str) -> bytes:
    return reply if isinstance(reply, bytes) else reply.encode()
