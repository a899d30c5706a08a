"""A plain WebSocket client of protocol v1 (the `websockets` library), as the room and recording tests
drive the gateway: responses matched to requests by req_id, pushes kept in the order they came."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed


@dataclass
class Client:
    ws: ClientConnection
    uid: str = ""
    session_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    # How long `call` waits for its response and `event` for its push, unless told.
    response_timeout_s: float = 20
    push_timeout_s: float = 10
    _ids: Iterator[int] = field(default_factory=itertools.count)

    async def call(self, cmd: str, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        req_id = f"r{next(self._ids)}"
        await self.ws.send(json.dumps({"cmd": cmd, "req_id": req_id, "params": params}))
        async with asyncio.timeout(self.response_timeout_s if timeout_s is None else timeout_s):
            while True:
                message = await self._next()
                if message.get("req_id") == req_id:
                    return message

    async def ok(self, cmd: str, **params: Any) -> dict[str, Any]:
        answer = await self.call(cmd, **params)
        assert answer["code"] == 0, (cmd, answer)
        return dict(answer["data"])

    async def _next(self) -> dict[str, Any]:
        message = dict(json.loads(await self.ws.recv()))
        if "event" in message:
            self.events.append(message)
        return message

    async def event(self, name: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The first push of that name not taken yet (earlier pushes of other names stay)."""
        async with asyncio.timeout(self.push_timeout_s if timeout_s is None else timeout_s):
            while True:
                for index, message in enumerate(self.events):
                    if message["event"] == name:
                        del self.events[index]
                        return dict(message["data"])
                await self._next()

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Read for a while; every push that came (and was not taken)."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    await self._next()
        except TimeoutError:
            pass
        return self.events

    async def close_code(self, timeout_s: float = 10) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await self._next()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        raise AssertionError("unreachable")
