"""Uvicorn run inside the service's own event loop, on a socket bound before start-up reports success: the
gateway's HTTP API and WebSocket protocol, and every service's operations endpoints (services/core/ops.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from services.core.errors import StartupError


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service runtime owns SIGINT/SIGTERM and stops this server itself.
        yield


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
            self._app, log_config=None, lifespan="off", access_log=False, ws_max_size=self._ws_max_frame_bytes
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
