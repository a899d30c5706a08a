"""A plain WebSocket client of protocol v1 (the `websockets` library), as the room and recording tests
drive the gateway: responses matched to requests by req_id, pushes kept in the order they came."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.licence_helpers import App, register_device


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


class Connections:
    """The clients a test opens, users of `app` unless told otherwise; closed together after it."""

    def __init__(self, app: App, **client_options: Any) -> None:
        self._app = app
        self._client_options = client_options
        self._opened: list[ClientConnection] = []

    async def open(self, url: str, uid: str | None = None, *, connect_as: bool = True) -> Client:
        """A client of the gateway at `url`; connected as user `uid` (a new one if not given) unless
        `connect_as` is false."""
        ws = await connect(url, proxy=None, open_timeout=10)
        self._opened.append(ws)
        client = Client(ws, uid=uid or f"u_{uuid.uuid4().hex[:10]}", **self._client_options)
        if connect_as:
            data = await client.ok("connect", **self._app.connect_params(client.uid))
            client.session_id = data["session_id"]
        return client

    async def open_device(self, url: str, licence: LicenceServiceStub, *, authorised_user: str) -> Client:
        """A new device of the app (activated and registered: licence_helpers.register_device) connected
        at `url` with its device secret, and `authorised_user` authorised to call it; its uid is its sn."""
        sn, secret = await register_device(licence, self._app)
        device = await self.open(url, sn, connect_as=False)
        device.session_id = (await device.ok("connect", sn=sn, device_secret=secret))["session_id"]
        await licence.SetAuthorisation(
            licence_pb2.SetAuthorisationRequest(
                biz_name=self._app.biz_name, sn=sn, open_id=authorised_user, authorised=True
            ),
            timeout=10,
        )
        return device

    async def close(self) -> None:
        for ws in self._opened:
            await ws.close()
