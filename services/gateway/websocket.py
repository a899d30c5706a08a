"""The WebSocket endpoint of protocol v1 (`/ws/v1`): frames in, limits enforced, commands dispatched.

Each connection is served by the task uvicorn runs it in, which reads frames and runs commands one at a
time, and one writer task that drains the session's outbound queue. A frame breaking a limit closes only
its own connection: a binary frame 1003, a frame over the size limit 1009, more frames than the rate
limit allows 1008. (Invalid UTF-8 in a text frame is closed with 1007 by the server library itself.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from services.core.http_server import SEND_TEXT_NOW
from services.gateway.commands import Clock, Commands
from services.gateway.protocol import CloseCode
from services.gateway.sessions import Session, SessionTable
from services.gateway.web_routes import OriginPolicy

log = structlog.get_logger(__name__)


class TokenBucket:
    """`rate_per_s` frames a second on average, `burst` at once; `take` says whether one more fits."""

    def __init__(self, *, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate_per_s = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate_per_s)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(frozen=True)
class ConnectionLimits:
    max_frame_bytes: int
    rate_per_s: float
    burst: int
    outbound_queue: int


ConnectionEnded = Callable[[Session], Awaitable[None]]


class WebSocketEndpoint:
    def __init__(
        self,
        commands: Commands,
        sessions: SessionTable,
        limits: ConnectionLimits,
        *,
        origins: OriginPolicy | None = None,
        connection_ended: ConnectionEnded | None = None,
    ) -> None:
        """`connection_ended` hears of every connection that ends (the room manager keeps its session);
        `origins` decides which web pages may connect (all, without it)."""
        self._commands = commands
        self._sessions = sessions
        self._limits = limits
        self._origins = origins
        self._connection_ended = connection_ended

    async def serve(self, websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if self._origins is not None and not self._origins.admits(origin, websocket.headers.get("host")):
            # Closing before the accept refuses the handshake with HTTP 403: a page of another site
            # cannot use a visitor's browser as a client of this gateway.
            log.info("ws_origin_refused", origin=origin)
            await websocket.close(code=CloseCode.POLICY_VIOLATION)
            return
        await websocket.accept()
        session = Session(outbound_limit=self._limits.outbound_queue)
        send_now = websocket.scope.get("extensions", {}).get(SEND_TEXT_NOW)
        if send_now is not None:
            session.send_directly(send_now["send"])
        writer = asyncio.create_task(self._write(session, websocket))
        try:
            await self._read(session, websocket)
        finally:
            self._sessions.remove(session)
            session.release()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if self._connection_ended is not None:
                await self._connection_ended(session)

    async def _read(self, session: Session, websocket: WebSocket) -> None:
        frames = TokenBucket(rate_per_s=self._limits.rate_per_s, burst=self._limits.burst)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if session.closing:
                # The close is on its way; what the client sent meanwhile has no one to answer it.
                continue
            violation = self._violation(message, frames)
            if violation is not None:
                code, reason = violation
                log.info("ws_closed_for_violation", session_id=session.id, code=code, reason=reason)
                session.close(code, reason)
                continue
            await self._commands.handle(session, message["text"])

    def _violation(self, message: Message, frames: TokenBucket) -> tuple[CloseCode, str] | None:
        if not frames.take():
            return CloseCode.POLICY_VIOLATION, "rate limit exceeded"
        text = message.get("text")
        if not isinstance(text, str):
            return CloseCode.UNSUPPORTED_DATA, "binary frames are not supported; send JSON text"
        limit = self._limits.max_frame_bytes
        # UTF-8 takes at least a byte per character: too many characters is too big without encoding.
        if len(text) > limit or len(text.encode()) > limit:
            return CloseCode.MESSAGE_TOO_BIG, f"frames are limited to {limit} bytes"
        return None

    @staticmethod
    async def _write(session: Session, websocket: WebSocket) -> None:
        try:
            await session.write(websocket.send_text, websocket.close)
        except (WebSocketDisconnect, WebSocketDisconnected):
            # The client went away mid-write; the reader sees the disconnect and ends the session.
            return


def websocket_first(http_app: ASGIApp, path: str, endpoint: WebSocketEndpoint) -> ASGIApp:
    """An ASGI app that hands the WebSocket connections of `path` straight to `endpoint` and everything else
    to `http_app`. Through the HTTP app a connection passed its middlewares (tracing, metrics, body limit,
    error pages: none of which acts on a WebSocket), a match against every route and FastAPI's dependency
    solving, and each frame sent went through the exception middleware's wrapper: together 10-19 % of the
    gateway's CPU samples in bench/join_cpu.py's profiles of connect and join."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == path:
            await endpoint.serve(WebSocket(scope, receive, send))
        else:
            await http_app(scope, receive, send)

    return app
