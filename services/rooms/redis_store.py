"""Live room state in Redis, so that it outlives the room manager that made it, with one owning room
manager per room at a time (docs/decisions.md). Device calls and client sessions are records of the same kind
beside the rooms, each with its own lease: what is said of rooms below holds for them.

The rules stay synchronous and never wait on the network in the middle of an operation: this store keeps
the records this room manager owns in memory, as the rules use them (a write-through cache: while its
lease holds nobody else writes them, so a load neither reads Redis nor decodes JSON, as with the
in-process store), notes what each operation saved or deleted, and `commit` writes that to Redis in one
script, atomically, before the service sends on what the operation caused. A record is encoded when it is
written, and one saved unchanged since Redis last acknowledged it is not sent again: its lease is
checked in the script, or not even that while the leases were renewed less than a lease ago (the sweep
saves every room a few times a second, and one that changed nothing then costs no round trip).
Commits are sent in order by one task on one connection, a script without waiting for the reply to the
one before it (Redis runs them in the order sent; at most `PIPELINE_DEPTH` in flight), and those that
queue meanwhile go together in the next script: a commit made while one script is in flight waits for its
own round trip, not for that one's as well, and a burst still costs a round trip for many commits (a
commit is answered only once its own records and facts are in Redis). A script runs only if the one
sent before it ran in full: one fenced, or unknown to Redis, is sent again with all those after it, once
their replies are read, so that commits land in order or not at all. An
operation's changes are all saved and its commit queued before the service waits on anything, so a
record encoded at its write holds no change whose facts are not in the same script.

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

One room manager leads at a time (`leader`, a lease like the others): the rest stand by without serving
(`lead` waits for the lease at start, before gRPC listens), so every gateway, relay and recorder reaches
the one room manager that owns every room; a standby takes the lease, and then every record, once the
leader is gone. A leader that finds the lease gone (it was cut off for longer than a lease) stops.

A record's name is its kind and its id, `room:<id>`, `call:<id>` or `session:<id>`. Keys, under the
store's prefix: `<name>` the record (services/rooms/room_codec.py), `records` the set of names,
`lease:<name>`, `epoch:<name>`, `outbox` and `outbox:publisher`, `leader` (above), `writer:<owner>` the
last commit script of an owner that ran (for the order check, expiring with a lease), and `relays`, a hash
of the relays' last reports by relay id (`share_relays`), which every room manager writes what it heard
to and reads the others' from.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import redis.asyncio as redis
import structlog
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError

from services.core.events import StagedEvent
from services.core.topics import Topic
from services.rooms import room_codec
from services.rooms.calls import Call, LineIndex
from services.rooms.facts import StagedFact
from services.rooms.placement import RelayNode
from services.rooms.sessions import ClientSession
from services.rooms.state import RoomState
from services.rooms.store import InviteeIndex

# ARGV: prefix, owner, lease ms, the sequence number of the script sent before it that must have run in
# full ("": none in flight), its own, number of writes, then per write: record name, the epoch held ("0": a
# new record, to lease), the record ("": delete, "=": unchanged, only its lease is checked); then the facts
# to stage. Writes nothing and returns {2} when the script before it did not run in full (it was fenced,
# or refused in turn), so that commits sent without waiting for each other's replies land in order or not
# at all; {0, fenced names...} when a record is leased to another owner or epoch; else
# {1, new name, its epoch, ...}.
_COMMIT = """
local prefix, owner, lease_ms, after, sequence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local count = tonumber(ARGV[6])
local written = prefix .. 'writer:' .. owner
if after ~= '' and redis.call('GET', written) ~= after then return {2} end
local fenced = {}
for i = 0, count - 1 do
  local room, epoch = ARGV[7 + i * 3], ARGV[8 + i * 3]
  local lease = redis.call('GET', prefix .. 'lease:' .. room)
  if (epoch == '0' and lease) or (epoch ~= '0' and lease ~= owner .. ':' .. epoch) then
    table.insert(fenced, room)
  end
end
if #fenced > 0 then return {0, unpack(fenced)} end
local leased = {1}
for i = 0, count - 1 do
  local room, epoch, record = ARGV[7 + i * 3], ARGV[8 + i * 3], ARGV[9 + i * 3]
  if record == '' then
    redis.call('DEL', prefix .. room, prefix .. 'lease:' .. room, prefix .. 'epoch:' .. room)
    redis.call('SREM', prefix .. 'records', room)
  elseif record ~= '=' then
    if epoch == '0' then
      epoch = tostring(redis.call('INCR', prefix .. 'epoch:' .. room))
      table.insert(leased, room)
      table.insert(leased, epoch)
    end
    redis.call('SET', prefix .. 'lease:' .. room, owner .. ':' .. epoch, 'PX', lease_ms)
    redis.call('SET', prefix .. room, record)
    redis.call('SADD', prefix .. 'records', room)
  end
end
for i = 7 + count * 3, #ARGV do
  redis.call('RPUSH', prefix .. 'outbox', ARGV[i])
end
redis.call('SET', written, sequence, 'PX', lease_ms)
return leased
"""
# ARGV: prefix, owner, lease ms, then "<name>:<epoch>" of each record held. Renews the leases still
# held; returns the names no longer held.
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
# ARGV: prefix, owner, lease ms. Leases every record nobody holds to `owner` at its next epoch; returns
# {name, epoch, record, ...} of those.
_TAKE_OVER = """
local prefix, owner, lease_ms = ARGV[1], ARGV[2], ARGV[3]
local taken = {}
for _, room in ipairs(redis.call('SMEMBERS', prefix .. 'records')) do
  local record = redis.call('GET', prefix .. room)
  if not record then
    redis.call('SREM', prefix .. 'records', room)
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
# Takes or keeps the room managers' leadership (KEYS[1]) for ARGV[1], for ARGV[2] ms; 0 when another has it.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# Gives up the leadership (KEYS[1]) if ARGV[1] holds it.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
ROOM_LEASE_S = 10.0
# Commit scripts sent and not answered yet, at most: a commit made while one is in flight is sent at once.
PIPELINE_DEPTH = 2
PUBLISHER_LEASE_S = 10.0

log = structlog.get_logger(__name__)


class LeadershipLost(Exception):
    """Another room manager leads now: this one must stop serving."""


class RoomsFenced(Exception):
    """Rooms or calls this room manager wrote are leased to another (or to a later epoch of itself): it no
    longer owns them, wrote nothing of the commit, and has forgotten them."""

    def __init__(self, room_ids: list[str]) -> None:
        super().__init__(f"owned elsewhere now: {', '.join(room_ids)}")
        # The ids of the rooms and calls (facts are keyed by them: services/rooms/changes.py).
        self.room_ids = room_ids


_ROOM = "room:"
_CALL = "call:"
_SESSION = "session:"


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
        # Scripts are sent by their SHA (EVALSHA), in full only when Redis does not know them yet.
        self._commit_script = client.register_script(_COMMIT)
        self._renew_script = client.register_script(_RENEW)
        self._take_over_script = client.register_script(_TAKE_OVER)
        self._staged_facts_script = client.register_script(_STAGED_FACTS)
        self._facts_published_script = client.register_script(_FACTS_PUBLISHED)
        self._lead_script = client.register_script(_LEAD)
        self._resign_script = client.register_script(_RESIGN)
        self._leading = False
        # The records this room manager owns, by name (`room:<id>`, `call:<id>`, `session:<id>`), as the
        # rules use them: the owner alone writes them while its lease holds, so what is here is what Redis
        # has plus what is not committed yet, and a load needs no read nor decoding.
        self._records: dict[str, _Record] = {}
        # The epoch of each record this room manager owns (one saved but not yet committed has none).
        self._epochs: dict[str, int] = {}
        # Each record's encoded form as Redis last acknowledged it: one saved unchanged is not written again.
        self._written: dict[str, bytes] = {}
        # Until when (by `clock`) the leases renewed last are surely still this room manager's.
        self._held_until = float("inf")
        self._invitees = InviteeIndex()
        self._lines = LineIndex()
        # Sessions taken over, for the room manager's session book (`taken_sessions`).
        self._taken_sessions: list[ClientSession] = []
        # What was saved (True) or deleted (False) since the last commit, by name.
        self._pending: dict[str, bool] = {}
        # Commits not sent yet, oldest first: the next script takes them all.
        self._queue: list[_Batch] = []
        # Set when a commit is queued, for the writer.
        self._queued = asyncio.Event()
        # Scripts sent and not read back yet, oldest first, and the last one's sequence number.
        self._sent: deque[_Sent] = deque()
        self._sequence = 0
        # Commits of scripts that did not run, to send again, in order, once those in flight are read back.
        self._resent: list[_Batch] = []
        self._resyncing = False
        # Sends the queue on one connection, so that commits reach Redis in the order they were taken.
        self._writer: asyncio.Task[None] | None = None

    def load(self, room_id: str) -> RoomState | None:
        self._let_go_if_stale()
        state = self._records.get(_ROOM + room_id)
        return state if isinstance(state, RoomState) else None

    def save(self, state: RoomState) -> None:
        self._keep_record(_ROOM + state.room_id, state)
        self._invitees.index(state.biz_name, state.room_id, set(state.invitations))

    def delete(self, room_id: str) -> None:
        self._drop_record(_ROOM + room_id)

    def room_ids(self) -> list[str]:
        self._let_go_if_stale()
        return _ids(self._records, _ROOM)

    def count(self) -> int:
        return len(_ids(self._records, _ROOM))

    def invited_to(self, biz_name: str, uid: str) -> list[str]:
        return self._invitees.rooms_of(biz_name, uid)

    def load_call(self, call_id: str) -> Call | None:
        self._let_go_if_stale()
        call = self._records.get(_CALL + call_id)
        return call if isinstance(call, Call) else None

    def save_call(self, call: Call) -> None:
        self._keep_record(_CALL + call.call_id, call)
        self._lines.index(call)

    def delete_call(self, call_id: str) -> None:
        self._drop_record(_CALL + call_id)

    def call_ids(self) -> list[str]:
        self._let_go_if_stale()
        return _ids(self._records, _CALL)

    def call_on_line(self, biz_name: str, uid: str) -> str | None:
        return self._lines.on_line(biz_name, uid)

    def save_session(self, session: ClientSession) -> None:
        self._keep_record(_SESSION + session.session_id, session)

    def delete_session(self, session_id: str) -> None:
        self._drop_record(_SESSION + session_id)

    def taken_sessions(self) -> list[ClientSession]:
        taken, self._taken_sessions = self._taken_sessions, []
        return taken

    def owns(self, room_id: str) -> int | None:
        """The epoch at which this room manager owns the room, None when it does not (yet)."""
        return self._epochs.get(_ROOM + room_id)

    def owns_call(self, call_id: str) -> int | None:
        return self._epochs.get(_CALL + call_id)

    async def lead(self) -> None:
        """Wait until this room manager leads: the others stand by, not serving, until the leader is gone.
        A store that does not answer is waited for as well: a room manager started again while still cut
        off from it stands by until it is back, rather than exit at every start until then."""
        while True:
            try:
                if await self._lead_script(keys=[self._key("leader")], args=[self._owner, self._lease_ms()]):
                    self._leading = True
                    return
            except redis.RedisError as error:
                log.warning("room_store_unreachable_standing_by", error=repr(error))
            # Polled: the leader's lease runs out in Redis, which tells nobody.
            await asyncio.sleep(self._room_lease_s / 3)

    async def resign(self) -> None:
        if self._leading:
            self._leading = False
            await self._resign_script(keys=[self._key("leader")], args=[self._owner])

    async def recover(self) -> None:
        await self._take_over()

    async def keep(self) -> None:
        """Renew the leases of the rooms and calls this room manager owns, forget those it lost, and take
        over those nobody holds (their owner died)."""
        started = self._clock()
        if self._leading and not await self._lead_script(
            keys=[self._key("leader")], args=[self._owner, self._lease_ms()]
        ):
            self._leading = False
            self._let_go(list(self._epochs))
            raise LeadershipLost()
        held = [f"{name}:{epoch}" for name, epoch in self._epochs.items()]
        if held:
            lost = await self._renew_script(args=[self._prefix, self._owner, self._lease_ms(), *held])
            self._let_go([_text(name) for name in lost])
        self._held_until = started + self._room_lease_s
        await self._take_over()

    async def commit(self, facts: Sequence[StagedFact] = ()) -> None:
        # Taken before any wait, so a commit holds exactly what was saved before it was called.
        batch = _Batch(self._pending, list(facts))
        self._pending = {}
        if not batch.names and not batch.facts and not self._queue:
            return
        self._queue.append(batch)
        self._queued.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="room-store-commits")
        # The write goes on if this caller is cancelled (its gRPC call ended): other commits go with it.
        await asyncio.shield(batch.done)
        if batch.error is not None:
            raise batch.error

    async def share_relays(self, heard: list[RelayNode], lease_s: float) -> list[RelayNode]:
        key = self._key("relays")
        async with self._redis.pipeline(transaction=False) as pipe:
            for relay in heard:
                pipe.hset(key, relay.relay_id, room_codec.encode_relay(relay))
            pipe.hgetall(key)
            replies = await pipe.execute()
        relays = [room_codec.decode_relay(data) for data in replies[-1].values()]
        stale = [relay.relay_id for relay in relays if relay.last_report + lease_s < time.time()]
        if stale:
            await self._redis.hdel(key, *stale)
        return [relay for relay in relays if relay.relay_id not in stale]

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

    def _keep_record(self, name: str, record: _Record) -> None:
        self._records[name] = record
        self._pending[name] = True

    def _drop_record(self, name: str) -> None:
        record = self._records.pop(name, None)
        if record is None:
            return
        self._pending[name] = False
        self._unindex(record)

    def _index(self, record: _Record) -> None:
        """Index a record read back from Redis (a call's lines never change, a room's invitations do)."""
        if isinstance(record, RoomState):
            self._invitees.index(record.biz_name, record.room_id, set(record.invitations))
        elif isinstance(record, Call):
            self._lines.index(record)

    def _unindex(self, record: _Record) -> None:
        if isinstance(record, RoomState):
            self._invitees.index(record.biz_name, record.room_id, set())
        elif isinstance(record, Call):
            self._lines.forget(record)

    async def _write_queued(self) -> None:
        """Send the queued commits to Redis as they come, each without waiting for the replies to the
        scripts before it (one connection: Redis runs them in the order sent), and answer each commit once
        the reply to its script is read. Those queued while one is sent go together in the next script."""
        pool = self._redis.connection_pool
        connection: AbstractConnection | None = None
        reply: asyncio.Task[object] | None = None
        try:
            connection = await pool.get_connection()
            while self._queue or self._sent:
                self._queued.clear()
                if self._queue and not self._held_back():
                    batches, self._queue = self._queue, []
                    await self._send(connection, batches)
                if not self._sent:
                    continue
                if reply is None:
                    reply = asyncio.create_task(connection.read_response())
                queued = asyncio.create_task(self._queued.wait())
                await asyncio.wait({queued, reply}, return_when=asyncio.FIRST_COMPLETED)
                queued.cancel()
                # A commit queued meanwhile is sent first: its round trip starts before this reply is read.
                if reply.done() and not self._queued.is_set():
                    answered, reply = reply, None
                    await self._read(answered)
        except Exception as error:
            if connection is not None:
                await connection.disconnect()
            self._fail(error)
        finally:
            self._writer = None
            if reply is not None:
                reply.cancel()
            if connection is not None:
                if self._sent:
                    # Cancelled or failed with replies unread: the connection cannot serve anyone else.
                    await connection.disconnect()
                await pool.release(connection)
            # Cancelled (the room manager stops): nobody waits for an answer that will not come.
            for batch in [
                *(batch for sent in self._sent for batch in sent.batches),
                *self._resent,
                *self._queue,
            ]:
                if not batch.done.done():
                    batch.done.cancel()

    def _fail(self, error: Exception) -> None:
        """Every commit sent or queued fails; the next commit writes them again, before its own, under what
        was saved since, in full (what Redis holds of them is not known). Some scripts whose replies were
        lost may have run: their facts are staged again with the same ids, which consumers drop."""
        batches = [batch for sent in self._sent for batch in sent.batches] + self._resent + self._queue
        for sent in self._sent:
            self._forget_sent(sent)
        self._resent = []
        self._resyncing = False
        names: dict[str, bool] = {}
        facts: list[StagedFact] = []
        for batch in batches:
            names |= batch.names
            facts += batch.facts
            batch.answer(error)
        self._queue = [_Batch(names, facts)]
        self._sent.clear()

    def _held_back(self) -> bool:
        """Whether the queued commits must wait for the scripts in flight: while `PIPELINE_DEPTH` are (a
        burst's commits then go in one script, rather than a script each, whose replies the busy event
        loop would read one turn at a time), while those after a fenced or unknown script are read back
        (all refused: `_COMMIT`'s order check), or when one saves a record a script in flight is leasing
        (its epoch is known only from that script's reply)."""
        if self._resyncing or len(self._sent) >= PIPELINE_DEPTH:
            return True
        leasing = {name for sent in self._sent for name in sent.leasing}
        return any(name in leasing for batch in self._queue for name in batch.names)

    async def _send(self, connection: AbstractConnection, batches: list[_Batch]) -> None:
        names: dict[str, bool] = {}
        facts: list[StagedFact] = []
        for batch in batches:
            names |= batch.names
            facts += batch.facts
        writes = self._writes(names)
        if not writes and not facts and not self._sent:
            # Nothing to write, nor to wait for (a record saved unchanged may still be in a script in
            # flight: then an empty script is answered after it, and only if it ran).
            for batch in batches:
                batch.answer()
            return
        # The script before it in flight must have run in full for this one to run (`_COMMIT`).
        after = str(self._sent[-1].sequence) if self._sent else ""
        self._sequence += 1
        args: list[str | bytes | int] = [
            self._prefix,
            self._owner,
            self._lease_ms(),
            after,
            self._sequence,
            len(writes),
        ]
        for write in writes:
            args += write
        args += [_fact(fact) for fact in facts]
        sent = _Sent(self._sequence, batches, writes)
        self._sent.append(sent)
        for name, _, data in writes:
            if data not in (_DELETED, _UNCHANGED):
                self._written[name] = data
        await connection.send_packed_command(
            connection.pack_command("EVALSHA", self._commit_script.sha, 0, *args), check_health=False
        )

    def _writes(self, names: dict[str, bool]) -> list[tuple[str, int, bytes]]:
        # Leases renewed less than a lease ago are still this room manager's (`keep`): nobody can have taken
        # those records over, so one saved unchanged needs no check in Redis either, and a sweep that
        # changed nothing costs no round trip.
        surely_held = self._clock() < self._held_until < float("inf")
        writes: list[tuple[str, int, bytes]] = []
        for name, saved in names.items():
            epoch = self._epochs.get(name, 0)
            if not saved:
                writes.append((name, epoch, _DELETED))
                continue
            record = self._records.get(name)
            if record is None:
                # Lost since it was saved (`_let_go`): nothing of it is written.
                continue
            data = _encode(record)
            if epoch and self._written.get(name) == data:
                # Unchanged since it was last sent (that script runs first, or this one does not run):
                # not sent again, at most its lease checked.
                if not surely_held:
                    writes.append((name, epoch, _UNCHANGED))
            else:
                writes.append((name, epoch, data))
        return writes

    async def _read(self, answered: asyncio.Task[object]) -> None:
        """Act on the reply to the oldest script in flight: answer its commits, or send them again once the
        scripts in flight are read back (it was fenced, or refused after one that was, or Redis did not
        know it)."""
        try:
            reply = answered.result()
        except NoScriptError:
            # Redis restarted or flushed its scripts: those sent after this one are refused, or unknown too.
            await self._redis.script_load(_COMMIT)
            reply = [_REFUSED]
        assert isinstance(reply, list)
        sent = self._sent.popleft()
        if int(reply[0]) in (_FENCED, _REFUSED):
            self._resyncing = True
            self._forget_sent(sent)
            if int(reply[0]) == _FENCED:
                self._fenced(sent.batches, [_text(name) for name in reply[1:]])
            for batch in sent.batches:
                if batch.names or batch.facts:
                    self._resent.append(batch)
                else:
                    # All it wrote was lost (`RoomsFenced`).
                    batch.answer()
        else:
            leased = reply[1:]
            for name, epoch in zip(leased[::2], leased[1::2], strict=True):
                self._epochs[_text(name)] = int(epoch)
            for name, _, data in sent.writes:
                if data == _DELETED:
                    self._epochs.pop(name, None)
                    self._written.pop(name, None)
            for batch in sent.batches:
                batch.answer()
        if not self._sent:
            # Every script in flight is read back: what must be written again goes first, in its order.
            self._queue = self._resent + self._queue
            self._resent = []
            self._resyncing = False

    def _forget_sent(self, sent: _Sent) -> None:
        """The script did not run (or may not have): what it sent is not known to be in Redis."""
        for name, _, data in sent.writes:
            if data not in (_DELETED, _UNCHANGED):
                self._written.pop(name, None)

    def _fenced(self, batches: list[_Batch], names: list[str]) -> None:
        """Nothing of the script was written. The lost records are forgotten with their writes and facts;
        the commits that wrote one are told, and what remains of every commit is written again."""
        lost_ids = {_id_of(name) for name in names}
        for batch in batches:
            lost = [name for name in names if name in batch.names]
            if lost and batch.error is None:
                batch.error = RoomsFenced([_id_of(name) for name in lost])
            batch.drop(names, lost_ids)
        self._let_go(names)

    async def _take_over(self) -> None:
        taken = await self._take_over_script(args=[self._prefix, self._owner, self._lease_ms()])
        for name, epoch, data in zip(taken[::3], taken[1::3], taken[2::3], strict=True):
            self._keep_taken(_text(name), int(epoch), _bytes(data))

    def _keep_taken(self, name: str, epoch: int, data: bytes) -> None:
        record = _decode(name, data)
        self._records[name] = record
        self._epochs[name] = epoch
        self._written[name] = data
        self._index(record)
        if isinstance(record, ClientSession):
            self._taken_sessions.append(record)

    def _let_go(self, names: list[str]) -> None:
        for name in names:
            self._epochs.pop(name, None)
            self._written.pop(name, None)
            self._pending.pop(name, None)
            record = self._records.pop(name, None)
            if record is not None:
                self._unindex(record)
        # Writes and facts of these records queued by a commit that failed (cut off from Redis) would
        # otherwise go with the next commit, which is not fenced for records it does not write: another
        # owner holds them now, and reports what happens to them.
        # Those in flight after a fenced script are refused and sent again: their facts of these records too.
        lost_ids = {_id_of(name) for name in names}
        for batch in [*(batch for sent in self._sent for batch in sent.batches), *self._resent, *self._queue]:
            batch.drop(names, lost_ids)

    def _let_go_if_stale(self) -> None:
        """Cut off from Redis past its leases, this room manager may have been replaced: it stops."""
        if self._clock() > self._held_until and self._epochs:
            self._let_go(list(self._epochs))

    def _lease_ms(self) -> int:
        return int(self._room_lease_s * 1000)

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"


_Record = RoomState | Call | ClientSession
# In a commit, in place of a record: deleted; written already, its lease only checked.
_DELETED = b""
_UNCHANGED = b"="
# The first value of `_COMMIT`'s reply.
_FENCED, _REFUSED = 0, 2


class _Sent:
    """A script sent: its commits and writes, and the records it leases (their epochs come with its reply)."""

    def __init__(self, sequence: int, batches: list[_Batch], writes: list[tuple[str, int, bytes]]) -> None:
        self.sequence = sequence
        self.batches = batches
        self.writes = writes
        self.leasing = {name for name, epoch, data in writes if not epoch and data != _DELETED}


class _Batch:
    """One commit's records (by name: saved or deleted) and facts, and how its write went."""

    def __init__(self, names: dict[str, bool], facts: list[StagedFact]) -> None:
        self.names = names
        self.facts = facts
        self.error: Exception | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer(self, error: Exception | None = None) -> None:
        """Answer the commit: written (None, unless fenced) or failed with `error`."""
        if self.error is None:
            self.error = error
        if not self.done.done():
            self.done.set_result(None)

    def drop(self, names: list[str], ids: set[str]) -> None:
        for name in names:
            self.names.pop(name, None)
        self.facts = [fact for fact in self.facts if fact.event.key not in ids]


def _encode(record: _Record) -> bytes:
    if isinstance(record, RoomState):
        return room_codec.encode(record)
    if isinstance(record, Call):
        return room_codec.encode_call(record)
    return room_codec.encode_session(record)


def _decode(name: str, data: bytes) -> _Record:
    if name.startswith(_ROOM):
        return room_codec.decode(data)
    if name.startswith(_CALL):
        return room_codec.decode_call(data)
    return room_codec.decode_session(data)


class _Fenced(Exception):
    def __init__(self, names: list[str]) -> None:
        self.names = names


def _ids(records: dict[str, _Record], kind: str) -> list[str]:
    return [name[len(kind) :] for name in records if name.startswith(kind)]


def _id_of(name: str) -> str:
    return name.split(":", 1)[1]


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
