"""Live client sessions of this gateway process: nothing durable, gone when the process goes.

A `Session` is one WebSocket connection. Everything sent to it — responses and pushes alike — goes through
its outbound queue, written by one writer task in order, so a push from the event consumer never
interleaves with a response. The queue is bounded: a client that reads more slowly than it is written to
is closed (1013) instead of growing the gateway's memory. A session joins the `SessionTable` when its
`connect` succeeds and leaves it when its connection ends.

A session outlives its connection in the room manager (session keeping): `id` names the session, which a
client may resume on a new connection, and `connection_id` names this connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.gateway.protocol import CloseCode, encode


@dataclass(frozen=True)
class User:
    biz_name: str
    uid: str
    app_id: str
    workspace_id: str


@dataclass(frozen=True)
class Device:
    biz_name: str
    sn: str
    model_id: str


Identity = User | Device


@dataclass(frozen=True)
class CloseRequest:
    code: int
    reason: str


class Session:
    def __init__(self, *, outbound_limit: int) -> None:
        self.id = uuid.uuid4().hex
        self.connection_id = uuid.uuid4().hex
        self.identity: Identity | None = None
        self.close_request: CloseRequest | None = None
        # The client said `disconnect`: its session has ended, not merely lost its connection.
        self.ended = False
        # Pushes (encoded) held back while `connect` is answered, so that the response comes first.
        self._held: list[str] | None = None
        self._outbound_limit = outbound_limit
        # Unbounded as a data structure; `send` keeps it at `outbound_limit` messages, so the close request
        # always fits behind them.
        self._outbox: asyncio.Queue[str | CloseRequest] = asyncio.Queue()
        # The writer task is sending a message taken from the outbox (it may wait for the socket to drain).
        self._writing = False
        # Writes a message to the socket at once if it can (services/core/http_server.py SEND_TEXT_NOW).
        self._send_now: Callable[[Sequence[str]], bool] | None = None
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def closing(self) -> bool:
        return self.close_request is not None

    def send(self, message: dict[str, Any]) -> None:
        """Queue `message`; never waits. Dropped once the session is closing."""
        self._send_texts([encode(message)])

    def send_directly(self, send_now: Callable[[Sequence[str]], bool]) -> None:
        """Write messages with `send_now` while nothing waits in the outbox: a push to a room reaches each
        of its participants without a task switch to the session's writer and the awaits of an ASGI send,
        and a session's pushes of one delivery go in one write."""
        self._send_now = send_now

    def _send_texts(self, texts: Sequence[str]) -> None:
        if self.close_request is not None or not texts:
            return
        # Straight to the socket only when that keeps the order: nothing queued, and nothing being written.
        send_now = self._send_now
        if send_now is not None and not self._writing and self._outbox.empty() and send_now(texts):
            return
        for text in texts:
            self._queue(text)

    def _queue(self, text: str) -> None:
        if self.close_request is not None:
            return
        if self._outbox.qsize() >= self._outbound_limit:
            # What is queued would reach the client late or never; the close should not wait behind it.
            while not self._outbox.empty():
                self._outbox.get_nowait()
            self.close(CloseCode.TRY_AGAIN_LATER, "outbound queue full: the client reads too slowly")
            return
        self._outbox.put_nowait(text)

    def hold_pushes(self) -> None:
        self._held = []

    def push(self, texts: Sequence[str]) -> None:
        """Queue pushes already encoded (`encode`: one push to many sessions is encoded once), or hold
        them while pushes are held."""
        if self._held is not None:
            self._held.extend(texts)
        else:
            self._send_texts(texts)

    def release_pushes(self) -> None:
        held, self._held = self._held, None
        if held:
            self._send_texts(held)

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued has been written; the first request wins."""
        if self.close_request is not None:
            return
        self.close_request = CloseRequest(code, reason)
        self._outbox.put_nowait(self.close_request)

    def expire_in(self, seconds: float) -> None:
        """Close with 4001 after `seconds` (a user's signature runs out)."""
        self._expiry = asyncio.get_running_loop().call_later(
            max(0.0, seconds), self.close, CloseCode.SIGNATURE_EXPIRED, "signature expired"
        )

    async def write(
        self, send_text: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]]
    ) -> None:
        """The writer task: send queued messages in order until the close request, sent last."""
        while True:
            item = await self._outbox.get()
            if isinstance(item, CloseRequest):
                await close(item.code, item.reason)
                return
            self._writing = True
            try:
                await send_text(item)
            finally:
                self._writing = False

    def release(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class SessionTable:
    """The connected sessions of this process, by id, by user (uid within its biz_name) and by device sn.
    One uid or sn may hold several sessions at once (two tabs, a reconnect racing the old socket)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._by_user: dict[tuple[str, str], dict[str, Session]] = {}
        self._by_device: dict[str, dict[str, Session]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def add(self, session: Session) -> None:
        """A session resumed on this connection replaces the one of its old connection, which is closed."""
        identity = session.identity
        if identity is None:
            raise ValueError("only a connected session joins the table")
        previous = self._by_id.get(session.id)
        if previous is not None and previous is not session:
            self.remove(previous)
            previous.close(CloseCode.SESSION_TAKEN_OVER, "session resumed on another connection")
        self._by_id[session.id] = session
        if isinstance(identity, User):
            self._by_user.setdefault((identity.biz_name, identity.uid), {})[session.id] = session
        else:
            self._by_device.setdefault(identity.sn, {})[session.id] = session

    def remove(self, session: Session) -> None:
        """Idempotent: the connection's end may follow a `disconnect` that already removed it, or a resume
        that replaced it."""
        if self._by_id.get(session.id) is not session:
            return
        del self._by_id[session.id]
        identity = session.identity
        if isinstance(identity, User):
            _discard(self._by_user, (identity.biz_name, identity.uid), session.id)
        elif isinstance(identity, Device):
            _discard(self._by_device, identity.sn, session.id)

    def rekey(self, session: Session, session_id: str) -> None:
        """Give a session in the table another id (a refused resume becomes a new session)."""
        self.remove(session)
        session.id = session_id
        self.add(session)

    def get(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def of_user(self, biz_name: str, uid: str) -> list[Session]:
        return list(self._by_user.get((biz_name, uid), {}).values())

    def of_device(self, sn: str) -> list[Session]:
        return list(self._by_device.get(sn, {}).values())


KeyT = TypeVar("KeyT")


def _discard(index: dict[KeyT, dict[str, Session]], key: KeyT, session_id: str) -> None:
    sessions = index.get(key)
    if sessions is not None:
        sessions.pop(session_id, None)
        if not sessions:
            del index[key]
