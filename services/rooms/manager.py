"""The room manager: the registry of live rooms (behind a `RoomStore`), the client sessions and the room
each is in, and the timed rules. No transport here, and no room rules either: an operation finds the
session and its room, lets the room (services/rooms/room.py), the invitations or the calls apply their
rules, and saves the room. What it caused (pushes queued for sessions, facts, relay orders) the service
takes with `outcome()` after every operation and sends on.

Timed rules (a session's grace, an empty room's grace, a negotiation's timeout, a gateway's lease, a call's
ringing and time limit) are applied by `sweep()`, which the service calls a few times a second.

With a shared store a room manager may take over the rooms, calls and sessions of one that died
(services/rooms/redis_store.py); a session whose record it did not get comes back as its gateway reports it
(a heartbeat or a request reopens it) and is seated in the room it is a participant of. A participant or a
call's party whose session does not come back within the session grace is gone, as if its session had
lapsed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from parley.relay.v1 import media_pb2
from parley.rooms.v1 import events_pb2, rooms_pb2

from services.core.errors import INVALID_ARGUMENT, NOT_FOUND, ErrorKind
from services.core.shared_errors import ACCOUNT_IN_ARREARS
from services.core.timestamps import timestamp
from services.rooms.calls import Call, CallOrder, CallRules, Calls
from services.rooms.errors import (
    ALREADY_IN_ROOM,
    INVITE_NOT_IN_ROOM,
    NOT_IN_ROOM,
    PUBLISH_ABANDONED,
    PUBLISH_NOT_IN_ROOM,
    ROOM_NOT_FOUND,
    SUBSCRIBE_ABANDONED,
    SUBSCRIBE_NOT_IN_ROOM,
    SUBSCRIBE_NOTHING,
    TEXT_NOT_IN_ROOM,
)
from services.rooms.invitations import Invitations
from services.rooms.outcome import Outcome, QueuedEffects
from services.rooms.p2p import Engine, room_engine
from services.rooms.placement import RelayLoad, RelayPlacement
from services.rooms.pushes import ExitType, InviteReply, MediaCloseCode, Push
from services.rooms.room import MediaSlot, MuteTarget, Room, RoomContext, RoomRules
from services.rooms.sessions import Attachment, ClientSession, HeldConnection, SessionBook
from services.rooms.store import InProcessRoomStore, RoomStore

# A call's room is made by the platform, with the seed's default of InitRoomConfig (no recording).
_CALL_ROOM_RECORD = rooms_pb2.RecordOptions(record_strong_depend=True)


class RoomManager:
    def __init__(
        self,
        rules: RoomRules,
        *,
        relay_address: str,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: RoomStore | None = None,
    ) -> None:
        self._rules = rules
        self._clock = clock
        self._now = now
        # Apps whose prepaid account ran out (billing's AccountStatusChanged): no new rooms, no joining.
        self._in_arrears: set[str] = set()
        # Sessions a room or a call here names and this room manager does not know (a room or call taken
        # over from one that died, whose sessions have not come back yet): since when, and the room it is
        # a participant of ("" for a call's side only).
        self._absent: dict[str, tuple[float, str]] = {}
        # `relay_address` serves the rooms placed while no relay has registered.
        self.relays = RelayPlacement(fallback=relay_address, lease_s=rules.relay_lease_s, clock=clock)
        self.sessions = SessionBook(grace_s=rules.session_grace_s, lease_s=rules.gateway_lease_s, clock=clock)
        self._store: RoomStore = store if store is not None else InProcessRoomStore()
        self._effects = QueuedEffects(self.sessions)
        self._context = RoomContext(
            rules,
            self._effects,
            place=self.relays.place,
            relay_live=self.relays.is_live,
            clock=clock,
            now=now,
        )
        self._invitations = Invitations(self.sessions, self._effects)
        self.calls = Calls(
            CallRules(ring_timeout_s=rules.call_ring_timeout_s),
            self.sessions,
            self._store,
            open_room=self._open_call_room,
            close_room=self.discard_room,
            record=self._effects.record,
            clock=clock,
            now=now,
        )

    @property
    def store(self) -> RoomStore:
        return self._store

    @property
    def rooms(self) -> int:
        return self._store.count()

    @property
    def participants(self) -> int:
        """Participants of every live room (read per scrape of the metrics: one pass over the store)."""
        states = (self._store.load(room_id) for room_id in self._store.room_ids())
        return sum(len(state.participants) for state in states if state is not None)

    @property
    def lease_s(self) -> float:
        return self._rules.gateway_lease_s

    def outcome(self) -> Outcome:
        """What the last operations caused; the sessions they changed are saved in the store with it."""
        for session_id, session in self.sessions.changed().items():
            if session is None:
                self._store.delete_session(session_id)
            else:
                self._store.save_session(session)
        return self._effects.take()

    # Sessions

    def open_session(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> None:
        retried = self.sessions.find(session_id) is not None
        session = self.sessions.open(session_id, biz_name, uid, attachment)
        self._seat_returned()
        if not retried:
            session.opened_at = self._now()
            self._effects.record(
                events_pb2.SessionOpened(
                    session_id=session_id,
                    biz_name=biz_name,
                    uid=uid,
                    gateway=attachment.gateway_address,
                    opened_at=timestamp(session.opened_at),
                )
            )

    def resume_session(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> str | None:
        """The room the resumed session is in, if any."""
        return self.sessions.resume(session_id, biz_name, uid, attachment).room_id

    def detach_session(self, session_id: str, connection_id: str) -> None:
        self.sessions.detach(session_id, connection_id)

    def close_session(self, session_id: str, connection_id: str) -> None:
        session = self.sessions.find(session_id)
        if session is not None and session.attachment.connection_id == connection_id:
            self._end_session(session, ExitType.NORMAL)

    def heartbeat(self, gateway_id: str, address: str, held: Iterable[HeldConnection]) -> None:
        self.sessions.heartbeat(gateway_id, address, held)
        self._seat_returned()

    def set_account_status(self, biz_name: str, in_arrears: bool) -> None:
        """Billing's word on an app's account: rooms already open go on, new ones wait for a top-up."""
        if in_arrears:
            self._in_arrears.add(biz_name)
        else:
            self._in_arrears.discard(biz_name)

    def _check_account(self, biz_name: str) -> None:
        if biz_name in self._in_arrears:
            raise ACCOUNT_IN_ARREARS(f"app {biz_name} is in arrears")

    # Rooms

    def create_room(
        self,
        *,
        biz_name: str,
        creator_uid: str,
        session_id: str,
        record: rooms_pb2.RecordOptions,
        engine: int = Engine.SFU,
    ) -> Room:
        engine = room_engine(engine, default_record=record.default_record)
        session = None
        if session_id:
            session = self.sessions.get(session_id)
            if session.room_id is not None:
                raise ALREADY_IN_ROOM()
            biz_name, creator_uid = session.biz_name, session.uid
        elif not biz_name or not creator_uid:
            raise INVALID_ARGUMENT("biz_name and creator_uid are required")
        self._check_account(biz_name)
        room = Room.open(
            self._context, biz_name=biz_name, creator_uid=creator_uid, record=record, engine=engine
        )
        with self._saving(room):
            if session is not None:
                room.admit(session.session_id, session.uid)
                self.sessions.seat(session, room.room_id)
        return room

    def get_room(self, room_id: str) -> Room:
        room = self._load(room_id)
        if room is None:
            raise NOT_FOUND(f"room {room_id} does not exist")
        return room

    def list_rooms(self, biz_name: str) -> list[Room]:
        """The live rooms of an app (every app's when `biz_name` is empty), oldest first."""
        rooms = [room for room in map(self._load, self._store.room_ids()) if room is not None]
        return sorted(
            (room for room in rooms if not biz_name or room.biz_name == biz_name),
            key=lambda room: room.state.created_at,
        )

    def remove_participant(self, room_id: str, uid: str) -> None:
        """An operator takes `uid` out of the room (Room.remove)."""
        room = self.get_room(room_id)
        if uid not in room.participants:
            raise NOT_FOUND(f"{uid} is not in room {room_id}")
        with self._saving(room):
            self._unseat(room.remove(uid).session_id)

    def close_room(self, room_id: str) -> None:
        """An operator closes the room: everyone is taken out (Room.remove), then it is destroyed."""
        room = self.get_room(room_id)
        with self._saving(room):
            for uid in list(room.participants):
                self._unseat(room.remove(uid).session_id)
            self._destroy(room)

    def join_room(self, session_id: str, room_id: str, rtoken: str, engine: int | None = None) -> Room:
        """`engine` is what the joiner expects; None joins whatever the room has."""
        session = self.sessions.get(session_id)
        if session.room_id is not None:
            raise ALREADY_IN_ROOM()
        self._check_account(session.biz_name)
        room = self._load(room_id)
        # Another app's room is answered like a missing one: the answer tells nothing about it.
        if room is None or room.biz_name != session.biz_name:
            raise ROOM_NOT_FOUND(f"room {room_id} does not exist")
        with self._saving(room):
            replaced = room.join(session_id, session.uid, rtoken, engine)
            if replaced is not None:
                self._unseat(replaced.session_id)
            self.sessions.seat(session, room.room_id)
        return room

    def leave_room(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            self._leave(room, session.uid, ExitType.NORMAL)

    def send_text(self, session_id: str, peers: list[str], text: str) -> str:
        session = self.sessions.get(session_id)
        with self._room_of(session, TEXT_NOT_IN_ROOM) as room:
            return room.send_text(session.uid, peers, text)

    def invite(self, session_id: str, uids: list[str], extra: str) -> None:
        session = self.sessions.get(session_id)
        with self._room_of(session, INVITE_NOT_IN_ROOM) as room:
            self._invitations.invite(room, session.uid, uids, extra)

    def reply_invite(self, session_id: str, room_id: str, reply: InviteReply, inviter: str) -> None:
        session = self.sessions.get(session_id)
        room = self._load(room_id)
        if room is None or room.biz_name != session.biz_name:
            self._invitations.reply(None, room_id, session.uid, reply, inviter)
            return
        with self._saving(room):
            self._invitations.reply(room, room_id, session.uid, reply, inviter)

    def push_room(self, room_id: str, push: Push) -> None:
        """Push to everyone in the room, if the room is still there (cloud recording's results)."""
        room = self._load(room_id)
        if room is not None:
            room.push_all(push)

    def discard_room(self, room_id: str) -> None:
        """Everyone leaves the room (their streams stop) and it is destroyed: a call ended, or the room's
        recording, which it strongly depends on, did not start."""
        room = self._load(room_id)
        if room is None:
            return
        with self._saving(room):
            for participant in room.leave_all():
                self._unseat(participant.session_id)
            self._destroy(room)

    # Feeds and subscriptions: reserve, negotiate (the gateway with the relay), complete or cancel

    def start_publish(
        self, session_id: str, media_type: int, tag: str, *, data_channel: bool = False
    ) -> MediaSlot:
        session = self.sessions.get(session_id)
        with self._room_of(session, PUBLISH_NOT_IN_ROOM) as room:
            return room.reserve_publish(session_id, session.uid, media_type, tag, data_channel=data_channel)

    def complete_publish(self, session_id: str, feed_id: str, tracks: tuple[media_pb2.Track, ...]) -> None:
        room = self._negotiating_room(session_id)
        if room is None:
            raise PUBLISH_ABANDONED()
        with self._saving(room):
            room.complete_publish(session_id, feed_id, tracks)

    def cancel_publish(self, session_id: str, feed_id: str) -> None:
        room = self._negotiating_room(session_id)
        if room is not None:
            with self._saving(room):
                room.cancel_publish(session_id, feed_id)

    def unpublish(self, session_id: str, feed_id: str) -> None:
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            room.unpublish(session.uid, feed_id)

    def start_subscribe(self, session_id: str, feed_id: str, *, audio: bool, video: bool) -> MediaSlot:
        if not audio and not video:
            raise SUBSCRIBE_NOTHING()
        session = self.sessions.get(session_id)
        with self._room_of(session, SUBSCRIBE_NOT_IN_ROOM) as room:
            return room.reserve_subscribe(session_id, session.uid, feed_id)

    def complete_subscribe(
        self, session_id: str, feed_id: str, subscription_id: str, tracks: tuple[media_pb2.Track, ...]
    ) -> None:
        room = self._negotiating_room(session_id)
        if room is None:
            raise SUBSCRIBE_ABANDONED()
        with self._saving(room):
            room.complete_subscribe(session_id, feed_id, subscription_id, tracks)

    def cancel_subscribe(self, session_id: str, feed_id: str) -> None:
        room = self._negotiating_room(session_id)
        if room is not None:
            with self._saving(room):
                room.cancel_subscribe(session_id, feed_id)

    def unsubscribe(self, session_id: str, feed_id: str) -> None:
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            room.unsubscribe(session.uid, feed_id)

    def send_p2p_signal(self, session_id: str, to: str, signal: rooms_pb2.P2PSignal) -> None:
        """Pass one participant's signal to the other participant of their P2P room, on whichever gateway
        holds its session; its pushes keep the order the signals came in."""
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            room.send_p2p_signal(session.uid, to, signal)

    # Stream control: what a relay reports of its streams, and mutes

    def stream_closed(
        self, room_id: str, feed_id: str, subscription_id: str, uid: str, code: MediaCloseCode
    ) -> None:
        """A relay closed a stream on its own (`Room.stream_closed`); a room no longer there is ignored."""
        room = self._load(room_id)
        if room is not None:
            with self._saving(room):
                room.stream_closed(feed_id, subscription_id, uid, code)

    def network_weak(
        self, room_id: str, feed_id: str, subscription_id: str, uid: str, *, bps_send: int, bps_recv: int
    ) -> None:
        room = self._load(room_id)
        if room is not None:
            room.network_weak(feed_id, subscription_id, uid, bps_send=bps_send, bps_recv=bps_recv)

    def mute_local(self, session_id: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            return room.mute_local(session.uid, feed_id, kind, muted)

    def mute_remote(self, session_id: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        session = self.sessions.get(session_id)
        with self._room_of(session, NOT_IN_ROOM) as room:
            return room.mute_remote(session.uid, feed_id, kind, muted)

    # Device calls (services/rooms/calls.py) and relays (services/rooms/placement.py)

    def check_free(self, session_id: str) -> ClientSession:
        return self.calls.check_free(session_id)

    def start_call(self, session_id: str, order: CallOrder) -> Call:
        return self.calls.start(session_id, order)

    def answer_call(self, session_id: str, call_id: str) -> Room:
        return self.calls.answer(session_id, call_id)

    def reject_call(self, session_id: str, call_id: str) -> None:
        self.calls.reject(session_id, call_id)

    def hang_up(self, session_id: str, call_id: str) -> None:
        self.calls.hang_up(session_id, call_id)

    def is_busy(self, session_id: str) -> bool:
        return self.calls.is_busy(session_id)

    def register_relay(self, relay_id: str, address: str, capacity: int, load: RelayLoad) -> float:
        """The lease the relay reports its load within."""
        self.relays.register(relay_id, address, capacity, load)
        return self.relays.lease_s

    def report_relay_load(self, relay_id: str, load: RelayLoad) -> None:
        self.relays.report(relay_id, load)

    # Time

    def sweep(self) -> None:
        for taken in self._store.taken_sessions():
            self.sessions.adopt(taken)
        self._seat_returned()
        for session in self.sessions.lapsed():
            self._end_session(session, ExitType.ABNORMAL)
        now = self._clock()
        named: set[str] = set()

        def gone(session_id: str, room_id: str = "") -> bool:
            named.add(session_id)
            return self._gone(session_id, room_id, now)

        self.calls.sweep(gone)
        for room_id in self._store.room_ids():
            room = self._load(room_id)
            if room is None:
                continue
            with self._saving(room):
                if room.lapsed(now):
                    self._destroy(room)
                    continue
                room.expire_negotiations(now)
                room.leave_dead_relay()
                for participant in list(room.participants.values()):
                    if gone(participant.session_id, room.room_id):
                        self._leave(room, participant.uid, ExitType.ABNORMAL)
                    else:
                        self._seat(room.room_id, participant.session_id)
        for session_id in set(self._absent) - named:
            del self._absent[session_id]

    # Session routing

    def _load(self, room_id: str) -> Room | None:
        state = self._store.load(room_id)
        return Room(state, self._context) if state is not None else None

    @contextmanager
    def _saving(self, room: Room) -> Iterator[None]:
        """Save the room when the operation is done, also when a rule refused after changing something."""
        try:
            yield
        finally:
            if not room.destroyed:
                self._store.save(room.state)

    @contextmanager
    def _room_of(self, session: ClientSession, not_in_room: ErrorKind) -> Iterator[Room]:
        room = self._load(session.room_id) if session.room_id is not None else None
        if room is None:
            raise not_in_room()
        with self._saving(room):
            yield room

    def _negotiating_room(self, session_id: str) -> Room | None:
        """Where a session's negotiations are: its room, as a session that leaves a room drops its
        negotiations there (and one that ended left its room)."""
        session = self.sessions.find(session_id)
        return self._load(session.room_id) if session is not None and session.room_id is not None else None

    def _gone(self, session_id: str, room_id: str, now: float) -> bool:
        """Whether a session a room or call here names is gone: unknown to this room manager for the
        session grace (it was another's, which died, and its gateway has not brought it back)."""
        if self.sessions.find(session_id) is not None:
            self._absent.pop(session_id, None)
            return False
        since, _ = self._absent.setdefault(session_id, (now, room_id))
        if room_id:
            self._absent[session_id] = (since, room_id)
        return now - since >= self._rules.session_grace_s

    def _seat_returned(self) -> None:
        """Seat the absent sessions that came back (without waiting for the sweep: their next request may
        already be for their room)."""
        for session_id, (_, room_id) in list(self._absent.items()):
            if self.sessions.find(session_id) is not None:
                del self._absent[session_id]
                if room_id:
                    self._seat(room_id, session_id)

    def _seat(self, room_id: str, session_id: str) -> None:
        """A session that came back (reopened by its gateway after a takeover) is in the room it is a
        participant of."""
        session = self.sessions.find(session_id)
        if session is not None and session.room_id is None:
            self.sessions.seat(session, room_id)

    def _leave(self, room: Room, uid: str, exit_type: ExitType) -> None:
        self._unseat(room.leave(uid, exit_type).session_id)

    def _unseat(self, session_id: str) -> None:
        session = self.sessions.find(session_id)
        if session is not None:
            self.sessions.seat(session, None)

    def _end_session(self, session: ClientSession, exit_type: ExitType) -> None:
        # A room no longer here (another room manager owns it now) is left by its owner's own rules.
        room = self._load(session.room_id) if session.room_id is not None else None
        if room is not None:
            with self._saving(room):
                self._leave(room, session.uid, exit_type)
        self.sessions.end(session.session_id)
        if session.opened_at is not None:
            self._effects.record(
                events_pb2.SessionClosed(
                    session_id=session.session_id,
                    biz_name=session.biz_name,
                    uid=session.uid,
                    gateway=session.attachment.gateway_address,
                    opened_at=timestamp(session.opened_at),
                    closed_at=timestamp(self._now()),
                )
            )
        self.calls.session_closed(session, network_lost=exit_type is ExitType.ABNORMAL)
        if not self.sessions.sessions_of(session.biz_name, session.uid):
            # A user with invitations waiting has no session left: the inviters hear "offline".
            for room_id in self._store.invited_to(session.biz_name, session.uid):
                inviting = self._load(room_id)
                if inviting is not None:
                    with self._saving(inviting):
                        self._invitations.invitee_gone(inviting, session.uid)

    def _open_call_room(self, biz_name: str, creator_uid: str) -> Room:
        room = Room.open(
            self._context,
            biz_name=biz_name,
            creator_uid=creator_uid,
            record=_CALL_ROOM_RECORD,
            engine=Engine.SFU,
            held_by_call=True,
        )
        self._store.save(room.state)
        return room

    def _destroy(self, room: Room) -> None:
        room.destroy()
        self._store.delete(room.room_id)
        self.relays.release(room.room_id)
