"""Uvicorn run inside the service's own event loop, on a socket bound before start-up reports success: the
gateway's HTTP API and WebSocket protocol, and every service's operations endpoints (services/core/ops.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator, Sequence
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from services.core.errors import StartupError


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service runtime owns SIGINT/SIGTERM and stops this server itself.
        yield


# A message this small goes out in one TCP segment compressed or not; compressing it (zlib's compress and
# sync flush, ~17 us on this machine for a 270-byte push) was paid for every push a room sends, 19,900 of
# them when 200 people join one room.
DEFLATE_MIN_BYTES = 1024


class LargeMessagesDeflate(PerMessageDeflate):
    """permessage-deflate that sends messages under DEFLATE_MIN_BYTES uncompressed: RFC 7692 lets each
    message choose (a compressed one has RSV1 set), and one left out is in neither side's window."""

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY) and frame.fin and len(frame.data) < DEFLATE_MIN_BYTES:
            return frame
        return super().encode(frame)


class LargeMessagesDeflateFactory(ServerPerMessageDeflateFactory):
    def process_request_params(
        self, params: Sequence[tuple[str, str | None]], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[tuple[str, str | None]], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, LargeMessagesDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )


# The ASGI extension (in a WebSocket scope's "extensions") by which an app writes text messages at once,
# without a task switch and an await, and several in one write: its "send" is
# `send_texts_now(texts) -> bool`, False when it cannot (the handshake is not done, the connection is
# closing or gone, or the socket's buffer is full), and then the app sends them the ordinary way, behind
# anything it queued.
SEND_TEXT_NOW = "parley.websocket.send_text_now"


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (what "auto" picks) with `LargeMessagesDeflate`, under the same
    settings uvicorn gives its own permessage-deflate, and `SEND_TEXT_NOW`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = ServerProtocol(
            extensions=[
                LargeMessagesDeflateFactory(
                    server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
                )
            ],
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        self.scope["extensions"][SEND_TEXT_NOW] = {"send": self.send_texts_now}

    def send_texts_now(self, texts: Sequence[str]) -> bool:
        """What uvicorn's `send` does with "websocket.send"s of text once the connection is open and
        writable, without being awaited, in one write: the gateway sends every push of a room to each
        participant, and the writer task, the ASGI message and the awaits around each write cost more than
        the write."""
        if (
            not self.handshake_complete
            or self.initial_response is not None
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            # Not open any more (the first one found it so: the state does not change in between).
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True


class HttpServer:
    def __init__(self, app: ASGIApp, *, host: str, port: int, ws_max_frame_bytes: int = 64 * 1024) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._ws_max_frame_bytes = ws_max_frame_bytes
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            raise StartupError(
                f"cannot listen for HTTP on {self.host}:{self.port}: {error.strerror}"
            ) from None
        self.port = listener.getsockname()[1]
        # Frames over the limit are refused by the WebSocket library before they are buffered (close 1009).
        config = uvicorn.Config(
            self._app,
            log_config=None,
            lifespan="off",
            access_log=False,
            ws=_WebSocketProtocol,
            ws_max_size=self._ws_max_frame_bytes,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise StartupError(f"HTTP server on {self.host}:{self.port} stopped during start-up")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
