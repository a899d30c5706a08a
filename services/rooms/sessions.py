"""Client sessions as the room manager sees them: who each is, which gateway connection holds it, and
the pushes it is owed.

A gateway opens a session once it has authenticated a connection. Pushes to a session join the queue of
the gateway holding its connection, in the order they were made, and the gateway's delivery worker takes
them from there in batches. When the connection drops the session is detached: pushes wait in its
backlog (with what was still queued for it) until the client resumes on any gateway, which is sent the
backlog first, or until the grace ends and the session with it. A gateway that stops heartbeating has
lost its connections: its sessions are detached the same way.

What a session is (its user, its connection, its room, when it was opened and detached) is kept in the room
store too (`changed`, services/rooms/store.py), so that a room manager taking over from one that died knows
its sessions (`adopt`); their backlogs and queued pushes are this process's only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from parley.rooms.v1 import delivery_pb2

from services.core.shared_errors import SESSION_UNKNOWN
from services.rooms.pushes import Push

# Pushes kept for a detached session. One that is owed more cannot be brought up to date by a resume,
# so it ends (as the gateway closes a client that reads too slowly) instead of growing without bound.
BACKLOG_LIMIT = 256


@dataclass(frozen=True)
class Attachment:
    gateway_id: str
    gateway_address: str
    connection_id: str


@dataclass(frozen=True)
class HeldConnection:
    """A connection a gateway reports in its heartbeat."""

    session_id: str
    connection_id: str
    biz_name: str
    uid: str


class Outbound(NamedTuple):
    """A push queued for a connection: one for each participant a push to a room goes to, so made cheaply
    (a frozen dataclass's `__init__` sets each field through `object.__setattr__`)."""

    session_id: str
    connection_id: str
    push: Push


@dataclass
class ClientSession:
    session_id: str
    biz_name: str
    uid: str
    attachment: Attachment
    attached_at: float
    detached_at: float | None = None
    room_id: str | None = None
    # When the room manager opened it (its SessionOpened fact); a resume keeps it.
    opened_at: datetime | None = None
    backlog: deque[Push] = field(default_factory=deque)
    overflowed: bool = False

    @property
    def attached(self) -> bool:
        return self.detached_at is None


@dataclass
class Gateway:
    gateway_id: str
    address: str
    last_seen: float
    queue: deque[Outbound] = field(default_factory=deque)


class SessionBook:
    def __init__(self, *, grace_s: float, lease_s: float, clock: Callable[[], float]) -> None:
        self._grace_s = grace_s
        self._lease_s = lease_s
        self._clock = clock
        self._sessions: dict[str, ClientSession] = {}
        self._by_user: dict[tuple[str, str], set[str]] = {}
        self._gateways: dict[str, Gateway] = {}
        self._ready: set[str] = set()
        # Sessions changed since `changed` was last called (None: ended).
        self._changed: dict[str, ClientSession | None] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> ClientSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SESSION_UNKNOWN(f"session {session_id} is not known; connect again")
        return session

    def find(self, session_id: str) -> ClientSession | None:
        return self._sessions.get(session_id)

    def sessions_of(self, biz_name: str, uid: str) -> list[ClientSession]:
        """Every live session of a user (attached, or detached within its grace)."""
        return [self._sessions[sid] for sid in sorted(self._by_user.get((biz_name, uid), ()))]

    def open(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> ClientSession:
        known = self._sessions.get(session_id)
        if known is not None and (known.biz_name, known.uid) == (biz_name, uid):
            # The gateway asks again (a retried call): the session keeps its place, on this connection.
            self._attach(known, attachment)
            return known
        if known is not None:
            raise SESSION_UNKNOWN(f"session {session_id} belongs to someone else")
        session = ClientSession(session_id, biz_name, uid, attachment, attached_at=self._clock())
        self._add(session)
        return session

    def adopt(self, session: ClientSession) -> None:
        """A session of a room manager that died, taken over with its record; one already known here (its
        gateway brought it back first) stays as it is, and is written again as this room manager's."""
        known = self._sessions.get(session.session_id)
        if known is not None:
            self._changed[known.session_id] = known
            return
        session.attached_at = self._clock()
        self._add(session)

    def seat(self, session: ClientSession, room_id: str | None) -> None:
        """The session is in `room_id` now (None: in no room)."""
        session.room_id = room_id
        self._changed[session.session_id] = session

    def changed(self) -> dict[str, ClientSession | None]:
        """The sessions changed since the last call, by id (None for those that ended)."""
        changed, self._changed = self._changed, {}
        return changed

    def _add(self, session: ClientSession) -> None:
        self._sessions[session.session_id] = session
        self._by_user.setdefault((session.biz_name, session.uid), set()).add(session.session_id)
        self._gateway(session.attachment)
        self._changed[session.session_id] = session

    def resume(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> ClientSession:
        session = self._sessions.get(session_id)
        # Someone else's session id is answered like an unknown one: the answer tells nothing.
        if session is None or (session.biz_name, session.uid) != (biz_name, uid) or session.overflowed:
            raise SESSION_UNKNOWN(f"session {session_id} cannot be resumed; connect without it")
        self._attach(session, attachment)
        return session

    def detach(self, session_id: str, connection_id: str) -> bool:
        """The connection dropped; False when it is not the session's current one (a resumed session's
        old connection ending late), which changes nothing."""
        session = self._sessions.get(session_id)
        if session is None or session.attachment.connection_id != connection_id or not session.attached:
            return False
        self._detach(session)
        return True

    def end(self, session_id: str) -> ClientSession | None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return None
        self._changed[session_id] = None
        self._take_queued(session)
        sessions = self._by_user[(session.biz_name, session.uid)]
        sessions.discard(session_id)
        if not sessions:
            del self._by_user[(session.biz_name, session.uid)]
        return session

    def push(self, session: ClientSession, push: Push) -> None:
        if session.attached:
            self._enqueue(
                session.attachment, Outbound(session.session_id, session.attachment.connection_id, push)
            )
            return
        session.backlog.append(push)
        if len(session.backlog) > BACKLOG_LIMIT:
            session.overflowed = True

    def ready_gateways(self) -> set[str]:
        """Gateways with pushes queued since the last call."""
        ready, self._ready = self._ready, set()
        return ready

    def address_of(self, gateway_id: str) -> str | None:
        gateway = self._gateways.get(gateway_id)
        return gateway.address if gateway is not None else None

    def take(self, gateway_id: str, *, limit: int) -> list[Outbound]:
        """The oldest pushes queued for a gateway, at most `limit`."""
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            return []
        return [gateway.queue.popleft() for _ in range(min(limit, len(gateway.queue)))]

    def delivered(
        self, gateway_id: str, batch: list[Outbound], missing_connection_ids: Iterable[str]
    ) -> None:
        """The gateway delivered `batch` except to the connections it no longer holds."""
        missing = set(missing_connection_ids)
        if missing:
            self._undelivered([item for item in batch if item.connection_id in missing])
        gateway = self._gateways.get(gateway_id)
        if gateway is not None:
            gateway.last_seen = max(gateway.last_seen, self._clock())

    def unreachable(self, gateway_id: str, batch: list[Outbound]) -> None:
        """The gateway could not be reached with `batch`: its connections are as good as dropped."""
        self._undelivered(batch)
        for session in list(self._sessions.values()):
            if session.attached and session.attachment.gateway_id == gateway_id:
                self._detach(session)

    def heartbeat(self, gateway_id: str, address: str, held: Iterable[HeldConnection]) -> None:
        now = self._clock()
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            gateway = self._gateways[gateway_id] = Gateway(gateway_id, address, now)
        gateway.address, gateway.last_seen = address, now
        listed: set[str] = set()
        for connection in held:
            listed.add(connection.connection_id)
            attachment = Attachment(gateway_id, address, connection.connection_id)
            session = self._sessions.get(connection.session_id)
            if session is None:
                # The room manager restarted, or ended the session while its gateway could not be reached:
                # the client is online again, in no room.
                self.open(connection.session_id, connection.biz_name, connection.uid, attachment)
            elif session.attachment.connection_id == connection.connection_id and not session.attached:
                # Detached because a delivery failed, but the connection lived on.
                self._attach(session, attachment)
        # A connection missing from the list dropped without its gateway reaching us; one attached less than a
        # heartbeat ago may simply be newer than the list.
        settled = now - self._lease_s / 3
        for session in list(self._sessions.values()):
            if (
                session.attached
                and session.attachment.gateway_id == gateway_id
                and session.attachment.connection_id not in listed
                and session.attached_at < settled
            ):
                self._detach(session)

    def lapsed(self) -> list[ClientSession]:
        """Sessions to end now: detached for longer than the grace, or owed more than the backlog holds.
        Gateways silent for longer than their lease lose their sessions (detached) first."""
        now = self._clock()
        for gateway in list(self._gateways.values()):
            if gateway.last_seen + self._lease_s <= now:
                for session in list(self._sessions.values()):
                    if session.attached and session.attachment.gateway_id == gateway.gateway_id:
                        self._detach(session)
                del self._gateways[gateway.gateway_id]
        return [
            session
            for session in self._sessions.values()
            if session.overflowed
            or (session.detached_at is not None and session.detached_at + self._grace_s <= now)
        ]

    def _gateway(self, attachment: Attachment) -> Gateway:
        gateway = self._gateways.get(attachment.gateway_id)
        if gateway is None:
            gateway = Gateway(attachment.gateway_id, attachment.gateway_address, self._clock())
            self._gateways[attachment.gateway_id] = gateway
        return gateway

    def _enqueue(self, attachment: Attachment, item: Outbound) -> None:
        self._gateway(attachment).queue.append(item)
        self._ready.add(attachment.gateway_id)

    def _attach(self, session: ClientSession, attachment: Attachment) -> None:
        if session.attached and session.attachment.connection_id != attachment.connection_id:
            # Resumed while its old connection still stands: what was queued for it is older than anything
            # else, and the old connection is told to close.
            owed = self._take_queued(session)
            self._enqueue(
                session.attachment,
                Outbound(
                    session.session_id, session.attachment.connection_id, delivery_pb2.SessionTakenOver()
                ),
            )
            session.backlog.extendleft(reversed(owed))
        session.attachment = attachment
        session.attached_at = self._clock()
        session.detached_at = None
        self._changed[session.session_id] = session
        backlog = list(session.backlog)
        session.backlog.clear()
        for push in backlog:
            self.push(session, push)

    def _detach(self, session: ClientSession) -> None:
        session.backlog.extend(self._take_queued(session))
        session.detached_at = self._clock()
        self._changed[session.session_id] = session
        if len(session.backlog) > BACKLOG_LIMIT:
            session.overflowed = True

    def _take_queued(self, session: ClientSession) -> list[Push]:
        gateway = self._gateways.get(session.attachment.gateway_id)
        if gateway is None:
            return []
        connection_id = session.attachment.connection_id
        owed = [
            item.push
            for item in gateway.queue
            if item.session_id == session.session_id and item.connection_id == connection_id
        ]
        if owed:
            gateway.queue = deque(item for item in gateway.queue if item.connection_id != connection_id)
        return owed

    def _undelivered(self, items: list[Outbound]) -> None:
        """Pushes that did not reach their connection: older than anything in the session's backlog."""
        by_session: dict[str, list[Push]] = {}
        for item in items:
            session = self._sessions.get(item.session_id)
            if session is None or isinstance(item.push, delivery_pb2.SessionTakenOver):
                continue
            if session.attachment.connection_id == item.connection_id:
                by_session.setdefault(item.session_id, []).append(item.push)
                if session.attached:
                    self._detach(session)
            else:
                # Resumed on another connection meanwhile: late, but not lost.
                self.push(session, item.push)
        for session_id, pushes in by_session.items():
            session = self._sessions[session_id]
            session.backlog.extendleft(reversed(pushes))
            if len(session.backlog) > BACKLOG_LIMIT:
                session.overflowed = True
