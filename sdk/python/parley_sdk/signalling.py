"""Protocol v1 (docs/protocol.md) over one WebSocket: requests answered by req_id, pushes handed to one
callback in the order they came."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Called on the reading task: it must not wait for a response (schedule a task for that).
PushHandler = Callable[[str, dict[str, Any]], None]


class ProtocolError(Exception):
    """A request the server refused: the protocol's `code` (the seed's where it has one) and `reason`."""

    def __init__(self, cmd: str, code: int, reason: str, msg: str) -> None:
        super().__init__(f"{cmd}: {msg} (code {code}, {reason})")
        self.cmd = cmd
        self.code = code
        self.reason = reason
        self.msg = msg


class Signalling:
    """One connection to a gateway's `/ws/v1`."""

    def __init__(self, ws: ClientConnection, on_push: PushHandler) -> None:
        self._ws = ws
        self._on_push = on_push
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()

    @classmethod
    async def open(cls, url: str, on_push: PushHandler) -> Signalling:
        return cls(await connect(url, proxy=None, open_timeout=10), on_push)

    async def request(self, cmd: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        """The response's `data`; a refusal raises ProtocolError."""
        req_id = str(next(self._ids))
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = answer
        try:
            await self._ws.send(json.dumps({"cmd": cmd, "req_id": req_id, "params": params}))
            async with asyncio.timeout(timeout_s):
                response = await answer
        finally:
            self._waiting.pop(req_id, None)
        if response["code"] != 0:
            raise ProtocolError(cmd, response["code"], response.get("reason", ""), response.get("msg", ""))
        return dict(response.get("data") or {})

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                if "event" in message:
                    self._on_push(message["event"], dict(message.get("data") or {}))
                elif (waiting := self._waiting.get(str(message.get("req_id")))) and not waiting.done():
                    waiting.set_result(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(ConnectionError("the gateway closed the connection"))

    async def close(self) -> None:
        with contextlib.suppress(ProtocolError, ConnectionError, TimeoutError, ConnectionClosed):
            await self.request("disconnect", timeout_s=5)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
