"""A real HTTP receiver for webhook tests: uvicorn on 127.0.0.1, answering as the test tells it (right,
500, `code` != 0, or down: not listening at all), and keeping every request it got."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from services.cli.webhook_commands import read_body
from services.core.embedded_broker import free_port

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # The answer given: True when it was the seed's success ({bizRequestId, code: 0} with a 200).
    acknowledged: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@dataclass
class Receiver:
    """`mode`: "ok" (200 echoing bizRequestId with code 0), "500", "410", "code" (200 with code 1)."""

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    mode: str = "ok"
    # Seconds each answer takes.
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _server: _Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            biz_request_id = json.loads(body).get("bizRequestId")
        except ValueError:
            biz_request_id = None
        status, answer = 200, {"bizRequestId": biz_request_id, "code": 0}
        if self.mode in ("500", "410"):
            status, answer = int(self.mode), {"error": "not here"}
        elif self.mode == "code":
            answer = {"bizRequestId": biz_request_id, "code": 1}
        acknowledged = self.mode == "ok"
        self.requests.append(Received(scope["path"], headers, body, acknowledged, time.monotonic()))
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        config = uvicorn.Config(self, log_config=None, lifespan="off", access_log=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Down: the port refuses connections until `start` again."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    def acknowledged(self) -> list[Received]:
        return [r for r in self.requests if r.acknowledged]

    def acknowledged_ids(self) -> set[str]:
        return {r.headers["webhook-id"] for r in self.acknowledged()}

    async def wait_for(self, predicate: Callable[[Receiver], bool], timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                await asyncio.sleep(0.05)
