"""What the room manager knows of this gateway's sessions: each one is opened with it at `connect` (or
resumed), detached when its connection drops, closed at `disconnect`; and a heartbeat lists the
connections this gateway holds.

The room manager pushes to a session through the gateway it was opened on (SessionDelivery, served by
services/gateway/room_pushes.py), so a session is in this gateway's table before the room manager hears of
it, with its pushes held until `connect` has been answered.

A room manager that cannot be reached does not stop `connect`: the session works for what needs no room,
and the next heartbeat (or the session's first room command) makes it known once the room manager answers.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import structlog
from parley.rooms.v1 import rooms_pb2
from parley.rooms.v1.room_sessions_pb2_grpc import RoomSessionServiceStub

from services.core.errors import from_rpc_error
from services.core.shared_errors import SESSION_UNKNOWN
from services.gateway.sessions import Device, Session, SessionTable, User

log = structlog.get_logger(__name__)

# Heartbeats are not traced, like health probes: every few seconds from every gateway, they would bury the
# spans that matter. They go over a channel without the tracing interceptor, with a trace parent whose
# sampled flag is off, so that the room manager does not record them either.
UNTRACED = (("traceparent", "00-00000000000000000000000000000001-0000000000000001-00"),)


def participant_uid(session: Session) -> str:
    """The uid a session has in rooms: a user's uid, a device's sn."""
    identity = session.identity
    if isinstance(identity, User):
        return identity.uid
    if isinstance(identity, Device):
        return identity.sn
    raise ValueError("the session has not connected")


class RoomSessions:
    def __init__(
        self,
        rooms: RoomSessionServiceStub,
        heartbeats: RoomSessionServiceStub,
        sessions: SessionTable,
        *,
        gateway_address: str,
        timeout_s: float,
        heartbeat_s: float,
    ) -> None:
        """`heartbeats` is a stub on a channel that does not trace its calls."""
        self.gateway_id = uuid.uuid4().hex
        self._rooms = rooms
        self._heartbeats = heartbeats
        self._sessions = sessions
        self._gateway_address = gateway_address
        self._timeout_s = timeout_s
        self._heartbeat_s = heartbeat_s
        self._heartbeat: asyncio.Task[None] | None = None

    def attachment(self, session: Session) -> rooms_pb2.Attachment:
        return rooms_pb2.Attachment(
            gateway_id=self.gateway_id,
            gateway_address=self._gateway_address,
            connection_id=session.connection_id,
        )

    async def connected(self, session: Session, resume_session_id: str | None) -> dict[str, Any]:
        if resume_session_id is None:
            self._sessions.add(session)
            await self._open(session)
            return {}
        if not self._may_take(session, resume_session_id):
            self._sessions.add(session)
            await self._open(session)
            return {"resumed": False}
        fresh_id, session.id = session.id, resume_session_id
        self._sessions.add(session)
        assert session.identity is not None
        request = rooms_pb2.ResumeSessionRequest(
            session_id=resume_session_id,
            biz_name=session.identity.biz_name,
            uid=participant_uid(session),
            attachment=self.attachment(session),
        )
        try:
            resumed = await self._rooms.ResumeSession(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            refusal = from_rpc_error(error)
            if refusal.kind != SESSION_UNKNOWN:
                log.warning("session_not_resumed", session_id=resume_session_id, reason=refusal.kind.reason)
            self._sessions.rekey(session, fresh_id)
            await self._open(session)
            return {"resumed": False}
        log.info("session_resumed", session_id=session.id, room_id=resumed.room_id)
        return {"resumed": True, "room_id": resumed.room_id}

    def _may_take(self, session: Session, session_id: str) -> bool:
        """Only its own user may take a session this gateway holds; the room manager checks the rest."""
        held = self._sessions.get(session_id)
        return held is None or (
            held.identity is not None
            and session.identity is not None
            and held.identity.biz_name == session.identity.biz_name
            and participant_uid(held) == participant_uid(session)
        )

    async def reopen(self, session: Session) -> None:
        """The room manager does not know the session (it restarted, or the grace ran out unseen)."""
        await self._open(session)

    async def _open(self, session: Session) -> None:
        assert session.identity is not None
        request = rooms_pb2.OpenSessionRequest(
            session_id=session.id,
            biz_name=session.identity.biz_name,
            uid=participant_uid(session),
            attachment=self.attachment(session),
        )
        try:
            await self._rooms.OpenSession(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            log.warning("session_not_opened", session_id=session.id, status=error.code().name)

    async def disconnected(self, session: Session) -> None:
        request = rooms_pb2.CloseSessionRequest(session_id=session.id, connection_id=session.connection_id)
        try:
            await self._rooms.CloseSession(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            # The room manager learns from the heartbeat that the connection is gone: the session then ends
            # after its grace, with exitType 2 instead of 1.
            log.warning("session_not_closed", session_id=session.id, status=error.code().name)

    async def connection_ended(self, session: Session) -> None:
        """The connection of a session ended; unless the client said `disconnect`, its session waits for a
        resume."""
        if session.identity is None or session.ended:
            return
        request = rooms_pb2.DetachSessionRequest(session_id=session.id, connection_id=session.connection_id)
        try:
            await self._rooms.DetachSession(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            log.warning("session_not_detached", session_id=session.id, status=error.code().name)

    async def start_heartbeat(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat(), name="rooms-heartbeat")

    async def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    async def _beat(self) -> None:
        reachable = True
        while True:
            request = rooms_pb2.GatewayHeartbeatRequest(
                gateway_id=self.gateway_id,
                gateway_address=self._gateway_address,
                connections=[
                    rooms_pb2.HeldConnection(
                        session_id=session.id,
                        connection_id=session.connection_id,
                        biz_name=session.identity.biz_name,
                        uid=participant_uid(session),
                    )
                    for session in self._sessions
                    if session.identity is not None
                ],
            )
            try:
                await self._heartbeats.GatewayHeartbeat(request, timeout=self._timeout_s, metadata=UNTRACED)
                if not reachable:
                    log.info("room_manager_reachable")
                reachable = True
            except grpc.aio.AioRpcError as error:
                # Said once per outage, not every beat.
                if reachable:
                    log.warning("room_manager_unreachable", status=error.code().name)
                reachable = False
            await asyncio.sleep(self._heartbeat_s)
