"""The commands of protocol v1 that every session has: `connect`, `disconnect`, `ping`; and the dispatch of
every command, including those added with `extend` (the room commands, services/gateway/room_commands.py).

`Commands.handle` answers one text frame of one session. Whatever the client sends, it answers with a
response (an error response for anything it cannot do) and never raises; each refusal is logged once.
Commands of one connection run one at a time, in the order they arrived, so responses keep that order.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import structlog
from opentelemetry.trace import SpanKind, Tracer
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub

from services.core.errors import INTERNAL, UNAVAILABLE, ParleyError, from_rpc_error
from services.core.shared_errors import SIGNATURE_WRONG_APP
from services.gateway.errors import (
    ALREADY_CONNECTED,
    CONNECT_THROTTLED,
    CONNECT_TIMEOUT,
    NOT_CONNECTED,
    UNKNOWN_COMMAND,
)
from services.gateway.ice_servers import IceServerGrant
from services.gateway.protocol import (
    BadRequest,
    CloseCode,
    DeviceConnect,
    UserConnect,
    failure,
    ok,
    parse_params,
    parse_request,
)
from services.gateway.sessions import Device, Session, SessionTable, User

log = structlog.get_logger(__name__)

Clock = Callable[[], float]


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


class ConnectThrottle:
    """Failed connects per key (a user's biz_name and uid, or a device's sn) in a sliding window.

    After `limit` failures within `window_s` the key is refused without asking the licence service, until
    the oldest of those failures leaves the window: guessing a signature or a device secret costs time.
    State is per gateway process; keys whose failures have all left the window are swept once a window.
    """

    def __init__(self, *, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after_s(self, key: str) -> float:
        """0 when `key` may try now; otherwise how many seconds until it may."""
        failures = self._failures.get(key)
        if failures is None or len(failures) < self._limit:
            return 0.0
        return max(0.0, failures[0] + self._window_s - self._clock())

    def record_failure(self, key: str) -> None:
        now = self._clock()
        self._sweep(now)
        # Only the latest `limit` failures decide whether the key is refused.
        self._failures.setdefault(key, deque(maxlen=self._limit)).append(now)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self._window_s:
            return
        self._last_sweep = now
        horizon = now - self._window_s
        for key in [key for key, failures in self._failures.items() if failures[-1] <= horizon]:
            del self._failures[key]


class Throttled(ParleyError):
    """CONNECT_THROTTLED, knowing when the client may try again."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_ms = math.ceil(retry_after_s * 1000)
        super().__init__(
            CONNECT_THROTTLED, f"too many failed connects; try again in {math.ceil(retry_after_s)} s"
        )


Run = Callable[[Session, dict[str, Any]], Awaitable[dict[str, Any]]]


class SessionHooks(Protocol):
    """What the room manager must know of a session's life (services/gateway/room_sessions.py)."""

    async def connected(self, session: Session, resume_session_id: str | None) -> dict[str, Any]:
        """Put the connected session in the table (resuming `resume_session_id` if it can); answer what
        `connect`'s data adds."""
        ...

    async def disconnected(self, session: Session) -> None:
        """The client said `disconnect`: its session ends."""
        ...


@dataclass(frozen=True)
class Command:
    run: Run
    # `connect` and `ping` are the only commands a connection may send before it has connected.
    before_connect: bool = False
    # The response goes out, then the connection closes normally.
    ends_session: bool = False
    # Pings arrive every few seconds from every client; a span each would bury the spans that matter.
    traced: bool = True


class Commands:
    def __init__(
        self,
        licence: LicenceServiceStub,
        sessions: SessionTable,
        throttle: ConnectThrottle,
        tracer: Tracer,
        *,
        licence_timeout_s: float,
        ice_servers: IceServerGrant,
        now_ms: Callable[[], int] = epoch_ms,
        hooks: SessionHooks | None = None,
    ) -> None:
        """Without `hooks` sessions live in this gateway only (no room manager to tell)."""
        self._licence = licence
        self._ice_servers = ice_servers
        self._hooks = hooks
        self._sessions = sessions
        self._throttle = throttle
        self._tracer = tracer
        self._licence_timeout_s = licence_timeout_s
        self._now_ms = now_ms
        self._commands: dict[str, Command] = {
            "connect": Command(self._connect, before_connect=True),
            "disconnect": Command(self._disconnect, ends_session=True),
            "ping": Command(self._ping, before_connect=True, traced=False),
        }

    def extend(self, commands: dict[str, Command]) -> None:
        self._commands.update(commands)

    async def handle(self, session: Session, text: str) -> None:
        try:
            request = parse_request(text)
        except BadRequest as bad:
            self._refused(session, None, bad.error)
            session.send(failure(bad.req_id, bad.error))
            return
        command = self._commands.get(request.cmd)
        try:
            if command is None:
                raise UNKNOWN_COMMAND(f"unknown command {request.cmd!r}")
            if session.identity is None and not command.before_connect:
                raise NOT_CONNECTED()
            if command.traced:
                with self._tracer.start_as_current_span(
                    f"ws {request.cmd}", kind=SpanKind.SERVER, attributes={"parley.session_id": session.id}
                ):
                    data = await command.run(session, request.params)
            else:
                data = await command.run(session, request.params)
        except ParleyError as error:
            self._refused(session, request.cmd, error)
            extra = {"retry_after_ms": error.retry_after_ms} if isinstance(error, Throttled) else None
            self._answer(session, failure(request.req_id, error, extra))
            return
        except Exception:
            log.exception("ws_command_failed", cmd=request.cmd, session_id=session.id)
            self._answer(session, failure(request.req_id, INTERNAL()))
            return
        self._answer(session, ok(request.req_id, data))
        if command.ends_session:
            session.close(CloseCode.NORMAL, "disconnect")

    @staticmethod
    def _answer(session: Session, response: dict[str, Any]) -> None:
        session.send(response)
        # Pushes that arrived while `connect` was answered follow its response.
        session.release_pushes()

    @staticmethod
    def _refused(session: Session, cmd: str | None, error: ParleyError) -> None:
        log.info(
            "ws_request_refused",
            session_id=session.id,
            cmd=cmd,
            code=error.code,
            reason=error.kind.reason,
            msg=error.message,
        )

    async def _connect(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        if session.identity is not None:
            raise ALREADY_CONNECTED()
        if "sn" in params:
            return await self._connect_device(session, parse_params(DeviceConnect, params))
        return await self._connect_user(session, parse_params(UserConnect, params))

    async def _connect_user(self, session: Session, params: UserConnect) -> dict[str, Any]:
        key = f"user:{params.biz_name}:{params.uid}"
        self._refuse_if_throttled(key)
        request = licence_pb2.VerifySignatureRequest(
            biz_name=params.biz_name, uid=params.uid, signature=params.sign
        )
        try:
            verified = await self._licence.VerifySignature(request, timeout=self._licence_timeout_s)
        except grpc.aio.AioRpcError as error:
            raise self._connect_failed(key, error) from None
        # The signature proves bizName + appId + workspaceId of the app; a client that names another appId
        # or workspace is configured for another app than the one it signs for.
        if verified.app_id != params.sub_biz or params.workspace_id not in (None, verified.workspace_id):
            self._throttle.record_failure(key)
            raise SIGNATURE_WRONG_APP("sub_biz and workspace_id are not those of the app of biz_name")
        self._throttle.forget(key)
        session.identity = User(
            biz_name=params.biz_name,
            uid=params.uid,
            app_id=verified.app_id,
            workspace_id=verified.workspace_id,
        )
        resumption = await self._admit(session, params.session_id)
        session.expire_in((verified.expire_time - self._now_ms()) / 1000)
        return {
            "session_id": session.id,
            "uid": params.uid,
            "biz_name": params.biz_name,
            "expire_time_ms": verified.expire_time,
            **resumption,
        }

    async def _connect_device(self, session: Session, params: DeviceConnect) -> dict[str, Any]:
        key = f"device:{params.sn}"
        self._refuse_if_throttled(key)
        request = licence_pb2.AuthenticateDeviceRequest(sn=params.sn, device_secret=params.device_secret)
        try:
            device = await self._licence.AuthenticateDevice(request, timeout=self._licence_timeout_s)
        except grpc.aio.AioRpcError as error:
            raise self._connect_failed(key, error) from None
        self._throttle.forget(key)
        session.identity = Device(biz_name=device.biz_name, sn=device.sn, model_id=device.model_id)
        resumption = await self._admit(session, params.session_id)
        return {"session_id": session.id, "sn": device.sn, "biz_name": device.biz_name, **resumption}

    async def _admit(self, session: Session, resume_session_id: str | None) -> dict[str, Any]:
        """Put an authenticated session in the table; what `connect` answers about resuming, and the ICE
        servers for the client's peer connections."""
        assert session.identity is not None
        identity = session.identity
        ice_servers = self._ice_servers.for_client(
            identity.uid if isinstance(identity, User) else identity.sn
        )
        if self._hooks is None:
            self._sessions.add(session)
            return {"ice_servers": ice_servers}
        session.hold_pushes()
        return {**await self._hooks.connected(session, resume_session_id), "ice_servers": ice_servers}

    def _refuse_if_throttled(self, key: str) -> None:
        retry_after_s = self._throttle.retry_after_s(key)
        if retry_after_s > 0:
            raise Throttled(retry_after_s)

    def _connect_failed(self, key: str, error: grpc.aio.AioRpcError) -> ParleyError:
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return CONNECT_TIMEOUT()
        refusal = from_rpc_error(error)
        # The platform failing is not the client's fault; only refused credentials count against it.
        if refusal.kind not in (UNAVAILABLE, INTERNAL):
            self._throttle.record_failure(key)
        return refusal

    async def _disconnect(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._sessions.remove(session)
        session.ended = True
        if self._hooks is not None:
            await self._hooks.disconnected(session)
        return {}

    async def _ping(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return {"ts": self._now_ms()}
