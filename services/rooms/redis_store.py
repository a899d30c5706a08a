"""Live room state in Redis, so that it outlives the room manager that made it, with one owning room
manager per room at a time (docs/decisions.md).

The rules stay synchronous and never wait on the network in the middle of an operation: this store keeps
the records of the rooms this room manager owns as encoded JSON in memory (every load decodes a fresh
copy, so nothing relies on a record staying the same object), notes what each operation saved or deleted,
and `commit` writes that to Redis in one script, atomically, before the service sends on what the
operation caused.

Ownership is a lease per room with an epoch: `lease:<id>` holds "<owner>:<epoch>" and expires unless
its owner renews it (`keep`, a few times per lease); `epoch:<id>` counts the owners the room has had.
Creating a room takes its lease with the next epoch; a room manager takes over a room whose lease is gone
(`recover` at start, `keep` afterwards) with the next epoch, and reads its record back. Every commit
checks, in the same script as its writes, that each room it writes is still leased to this owner at the
epoch it holds: a room manager that lost a room (its lease ran out while it was cut off, and another took
the room over) writes nothing more for it, stages none of its facts, and forgets it, and the service
sends on nothing of the operation (`RoomsFenced`). A room manager that cannot renew stops serving its
rooms once its leases may have run out, even before it hears of another owner.

Facts are staged in the same script (`outbox`, a list, oldest first) and published from there by one
room manager at a time: the one holding `outbox:publisher`, a lease it renews while it publishes, so
that the facts of a room keep their order. Only the holder removes what it published, checked in the
same script, so a publisher that stalled past its lease cannot remove facts another one has not sent.

Keys, under the store's prefix: `room:<id>` the record (services/rooms/room_codec.py), `rooms` the set of
room ids, `lease:<id>`, `epoch:<id>`, `outbox` and `outbox:publisher`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import redis.asyncio as redis

from services.core.events import StagedEvent
from services.core.topics import Topic
from services.rooms import room_codec
from services.rooms.facts import StagedFact
from services.rooms.state import RoomState
from services.rooms.store import InviteeIndex

# ARGV: prefix, owner, lease ms, number of writes, then per write: room id, the epoch held ("0": a new
# room, to lease), the record ("": delete); then the facts to stage. Returns {0, fenced room ids...} and
# writes nothing when a room is leased to another owner or epoch, else {1, new room id, its epoch, ...}.
_COMMIT = """
local prefix, owner, lease_ms, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local fenced = {}
for i = 0, count - 1 do
  local room, epoch = ARGV[5 + i * 3], ARGV[6 + i * 3]
  local lease = redis.call('GET', prefix .. 'lease:' .. room)
  if (epoch == '0' and lease) or (epoch ~= '0' and lease ~= owner .. ':' .. epoch) then
    table.insert(fenced, room)
  end
end
if #fenced > 0 then return {0, unpack(fenced)} end
local leased = {1}
for i = 0, count - 1 do
  local room, epoch, record = ARGV[5 + i * 3], ARGV[6 + i * 3], ARGV[7 + i * 3]
  if record == '' then
    redis.call('DEL', prefix .. 'room:' .. room, prefix .. 'lease:' .. room, prefix .. 'epoch:' .. room)
    redis.call('SREM', prefix .. 'rooms', room)
  else
    if epoch == '0' then
      epoch = tostring(redis.call('INCR', prefix .. 'epoch:' .. room))
      table.insert(leased, room)
      table.insert(leased, epoch)
    end
    redis.call('SET', prefix .. 'lease:' .. room, owner .. ':' .. epoch, 'PX', lease_ms)
    redis.call('SET', prefix .. 'room:' .. room, record)
    redis.call('SADD', prefix .. 'rooms', room)
  end
end
for i = 5 + count * 3, #ARGV do
  redis.call('RPUSH', prefix .. 'outbox', ARGV[i])
end
return leased
"""
# ARGV: prefix, owner, lease ms, then "<room id>:<epoch>" of each room held. Renews the leases still
# held; returns the room ids no longer held.
_RENEW = """
local prefix, owner, lease_ms = ARGV[1], ARGV[2], ARGV[3]
local lost = {}
for i = 4, #ARGV do
  local room, epoch = string.match(ARGV[i], '^(.*):(%d+)$')
  local key = prefix .. 'lease:' .. room
  if redis.call('GET', key) == owner .. ':' .. epoch then
    redis.call('PEXPIRE', key, lease_ms)
  else
    table.insert(lost, room)
  end
end
return lost
"""
# ARGV: prefix, owner, lease ms. Leases every room nobody holds to `owner` at its next epoch; returns
# {room id, epoch, record, ...} of those.
_TAKE_OVER = """
local prefix, owner, lease_ms = ARGV[1], ARGV[2], ARGV[3]
local taken = {}
for _, room in ipairs(redis.call('SMEMBERS', prefix .. 'rooms')) do
  local record = redis.call('GET', prefix .. 'room:' .. room)
  if not record then
    redis.call('SREM', prefix .. 'rooms', room)
  elseif redis.call('EXISTS', prefix .. 'lease:' .. room) == 0 then
    local epoch = tostring(redis.call('INCR', prefix .. 'epoch:' .. room))
    redis.call('SET', prefix .. 'lease:' .. room, owner .. ':' .. epoch, 'PX', lease_ms)
    table.insert(taken, room)
    table.insert(taken, epoch)
    table.insert(taken, record)
  end
end
return taken
"""
# Takes or keeps the publisher's lease (KEYS[1]) for ARGV[1], for ARGV[2] ms; then the oldest ARGV[3]
# staged facts (KEYS[2]), or none when another holds the lease.
_STAGED_FACTS = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)
"""
# Removes the first ARGV[2] staged facts, only while ARGV[1] holds the publisher's lease.
_FACTS_PUBLISHED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
return 1
"""
ROOM_LEASE_S = 10.0
PUBLISHER_LEASE_S = 10.0


class RoomsFenced(Exception):
    """Rooms this room manager wrote are leased to another (or to a later epoch of itself): it no longer
    owns them, wrote nothing of the commit, and has forgotten them."""

    def __init__(self, room_ids: list[str]) -> None:
        super().__init__(f"rooms owned elsewhere now: {', '.join(room_ids)}")
        self.room_ids = room_ids


class RedisRoomStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "parley:rooms:",
        room_lease_s: float = ROOM_LEASE_S,
        publisher_lease_s: float = PUBLISHER_LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        # Unique per process: a room manager that restarts is a new owner, and takes its rooms over.
        self._owner = uuid.uuid4().hex
        self._room_lease_s = room_lease_s
        self._publisher_lease_ms = int(publisher_lease_s * 1000)
        self._clock = clock
        self._commit_script = client.register_script(_COMMIT)
        self._renew_script = client.register_script(_RENEW)
        self._take_over_script = client.register_script(_TAKE_OVER)
        self._staged_facts_script = client.register_script(_STAGED_FACTS)
        self._facts_published_script = client.register_script(_FACTS_PUBLISHED)
        self._rooms: dict[str, bytes] = {}
        # The epoch of each room this room manager owns (a room saved but not yet committed has none).
        self._epochs: dict[str, int] = {}
        # Until when (by `clock`) the leases renewed last are surely still this room manager's.
        self._held_until = float("inf")
        self._invitees = InviteeIndex()
        # Room id -> its record to write, or None to delete it; in the order of the operations.
        self._pending: dict[str, bytes | None] = {}
        # Facts whose commit failed: staged ahead of the next commit's.
        self._unstaged: list[StagedFact] = []
        # Commits reach Redis in the order they were taken.
        self._commit_lock = asyncio.Lock()

    def load(self, room_id: str) -> RoomState | None:
        self._let_go_if_stale()
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
        self._let_go_if_stale()
        return list(self._rooms)

    def count(self) -> int:
        return len(self._rooms)

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        return self._invitees.rooms_of(biz_name, uid)

    def owns(self, room_id: str) -> int | None:
        """The epoch at which this room manager owns the room, None when it does not (yet)."""
        return self._epochs.get(room_id)

    async def recover(self) -> None:
        await self._take_over()

    async def keep(self) -> None:
        """Renew the leases of the rooms this room manager owns, forget those it lost, and take over the
        rooms nobody holds (their owner died)."""
        started = self._clock()
        held = [f"{room_id}:{epoch}" for room_id, epoch in self._epochs.items()]
        if held:
            lost = await self._renew_script(args=[self._prefix, self._owner, self._lease_ms(), *held])
            self._let_go([_text(room_id) for room_id in lost])
        self._held_until = started + self._room_lease_s
        await self._take_over()

    async def commit(self, facts: Sequence[StagedFact] = ()) -> None:
        # Taken before any wait, so a commit holds exactly what was saved before it was called.
        writes, self._pending = self._pending, {}
        staged, self._unstaged = [*self._unstaged, *facts], []
        if not writes and not staged:
            return
        async with self._commit_lock:
            try:
                await self._write(writes, staged)
            except RoomsFenced as fenced:
                lost = set(fenced.room_ids)
                self._let_go(fenced.room_ids)
                # The other rooms' writes and facts go with the next commit; the lost rooms' are dropped.
                self._pending = {r: d for r, d in writes.items() if r not in lost} | self._pending
                self._unstaged = [f for f in staged if f.event.key not in lost] + self._unstaged
                raise
            except Exception:
                # The next commit writes them again, under what was saved since.
                self._pending = writes | self._pending
                self._unstaged = staged + self._unstaged
                raise

    async def staged_facts(self, limit: int) -> list[StagedFact]:
        entries = await self._staged_facts_script(
            keys=[self._key("outbox:publisher"), self._key("outbox")],
            args=[self._owner, self._publisher_lease_ms, limit],
        )
        return [_read_fact(entry) for entry in entries]

    async def facts_published(self, count: int) -> None:
        await self._facts_published_script(
            keys=[self._key("outbox:publisher"), self._key("outbox")], args=[self._owner, count]
        )

    async def _write(self, writes: dict[str, bytes | None], facts: list[StagedFact]) -> None:
        args: list[str | bytes | int] = [self._prefix, self._owner, self._lease_ms(), len(writes)]
        for room_id, data in writes.items():
            args += [room_id, self._epochs.get(room_id, 0), b"" if data is None else data]
        args += [_fact(fact) for fact in facts]
        reply = await self._commit_script(args=args)
        if int(reply[0]) == 0:
            raise RoomsFenced([_text(room_id) for room_id in reply[1:]])
        leased = reply[1:]
        for room_id, epoch in zip(leased[::2], leased[1::2], strict=True):
            self._epochs[_text(room_id)] = int(epoch)
        for room_id, data in writes.items():
            if data is None:
                self._epochs.pop(room_id, None)

    async def _take_over(self) -> None:
        taken = await self._take_over_script(args=[self._prefix, self._owner, self._lease_ms()])
        for epoch, data in zip(taken[1::3], taken[2::3], strict=True):
            state = room_codec.decode(data)
            self._rooms[state.room_id] = _bytes(data)
            self._epochs[state.room_id] = int(epoch)
            self._invitees.index(state.biz_name, state.room_id, set(state.invitations))

    def _let_go(self, room_ids: list[str]) -> None:
        for room_id in room_ids:
            self._epochs.pop(room_id, None)
            self._pending.pop(room_id, None)
            data = self._rooms.pop(room_id, None)
            if data is not None:
                self._invitees.index(room_codec.decode(data).biz_name, room_id, set())

    def _let_go_if_stale(self) -> None:
        """Cut off from Redis past its leases, this room manager may have been replaced: it stops."""
        if self._clock() > self._held_until and self._epochs:
            self._let_go(list(self._epochs))

    def _lease_ms(self) -> int:
        return int(self._room_lease_s * 1000)

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"


# The client is not told to decode responses, so replies are bytes; its type stubs allow str as well.
def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def _bytes(reply: bytes | str) -> bytes:
    return reply if isinstance(reply, bytes) else reply.encode()


def _fact(fact: StagedFact) -> bytes:
    event = fact.event
    return json.dumps(
        {
            "id": event.event_id,
            "topic": event.topic.value,
            "key": event.key,
            "type": event.event_type,
            "payload": base64.b64encode(event.payload).decode(),
            "time": event.time.isoformat(),
            "traceparent": fact.traceparent,
        },
        separators=(",", ":"),
    ).encode()


def _read_fact(entry: bytes | str) -> StagedFact:
    raw = json.loads(entry)
    return StagedFact(
        StagedEvent(
            event_id=raw["id"],
            topic=Topic(raw["topic"]),
            key=raw["key"],
            event_type=raw["type"],
            payload=base64.b64decode(raw["payload"]),
            time=datetime.fromisoformat(raw["time"]),
        ),
        raw["traceparent"],
    )
