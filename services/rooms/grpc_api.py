"""gRPC handlers of the room manager, one servicer per API and its callers (docs/internal-apis.md): translate
messages, call the manager, send on what it caused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

import grpc
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.rooms.v1 import relay_reports_pb2_grpc, room_sessions_pb2_grpc, rooms_pb2, rooms_pb2_grpc

from services.core.errors import INVALID_ARGUMENT, from_rpc_error, require_fields
from services.core.media.kinds import kind_name
from services.rooms import messages
from services.rooms.calls import CallMedia
from services.rooms.errors import CALL_MEDIA_NOT_LICENSED, CALLED_DEVICE_INVALID
from services.rooms.manager import RoomManager
from services.rooms.placement import RelayLoad
from services.rooms.pushes import InviteReply, MediaCloseCode
from services.rooms.recording_events import DefaultRecording
from services.rooms.room import MediaSlot
from services.rooms.sessions import Attachment, HeldConnection

Context: TypeAlias = grpc.aio.ServicerContext


def _attachment(message: rooms_pb2.Attachment) -> Attachment:
    require_fields(
        gateway_id=message.gateway_id,
        gateway_address=message.gateway_address,
        connection_id=message.connection_id,
    )
    return Attachment(message.gateway_id, message.gateway_address, message.connection_id)


def _load(message: rooms_pb2.RelayLoad) -> RelayLoad:
    return RelayLoad(message.publications, message.subscriptions, message.draining)


def _relay(slot: MediaSlot) -> rooms_pb2.RelayRef:
    return rooms_pb2.RelayRef(address=slot.relay_address)


# The licence service's DEVICE_ID_INVALID (seed 000 -2), by code: the room manager does not import it.
DEVICE_ID_INVALID_CODE = -2


class _ManagerApi:
    """What the room manager's servicers share: the manager, and sending on what an operation caused."""

    def __init__(self, manager: RoomManager, dispatch: Callable[[], Awaitable[None]]) -> None:
        """`dispatch` sends on what an operation caused (pushes, facts, relay orders), failed or not: an
        operation that fails halfway has still done what it did."""
        self._manager = manager
        self._dispatch = dispatch

    @asynccontextmanager
    async def _operation(self) -> AsyncIterator[RoomManager]:
        try:
            yield self._manager
        finally:
            await self._dispatch()


class RoomServicer(_ManagerApi, rooms_pb2_grpc.RoomServiceServicer):
    """The public room API (rooms.proto RoomService): apps' backends through the gateway, the recorder."""

    def __init__(
        self,
        manager: RoomManager,
        dispatch: Callable[[], Awaitable[None]],
        *,
        recording: DefaultRecording | None = None,
    ) -> None:
        super().__init__(manager, dispatch)
        # Starts the recording of a room created with defaultRecord or of an app with autoRecord
        # (services/rooms/recording_events.py).
        self._recording = recording

    async def CreateRoom(
        self, request: rooms_pb2.CreateRoomRequest, context: Context
    ) -> rooms_pb2.CreateRoomResponse:
        async with self._operation() as manager:
            room = manager.create_room(
                biz_name=request.biz_name,
                creator_uid=request.creator_uid,
                session_id=request.session_id,
                record=request.record,
                engine=request.engine,
            )
        record_id = ""
        if self._recording is not None and await self._recording.wanted(room):
            record_id = await self._recording.start(room)
        return rooms_pb2.CreateRoomResponse(room=room.message(), record_id=record_id)

    async def GetRoom(self, request: rooms_pb2.GetRoomRequest, context: Context) -> rooms_pb2.Room:
        return self._manager.get_room(request.room_id).message()

    async def ListRooms(
        self, request: rooms_pb2.ListRoomsRequest, context: Context
    ) -> rooms_pb2.ListRoomsResponse:
        rooms = self._manager.list_rooms(request.biz_name)
        return rooms_pb2.ListRoomsResponse(rooms=[room.message() for room in rooms])

    async def RemoveParticipant(
        self, request: rooms_pb2.RemoveParticipantRequest, context: Context
    ) -> rooms_pb2.RemoveParticipantResponse:
        async with self._operation() as manager:
            manager.remove_participant(request.room_id, request.uid)
        return rooms_pb2.RemoveParticipantResponse()

    async def CloseRoom(
        self, request: rooms_pb2.GetRoomRequest, context: Context
    ) -> rooms_pb2.CloseRoomResponse:
        async with self._operation() as manager:
            manager.close_room(request.room_id)
        return rooms_pb2.CloseRoomResponse()


class RoomSessionServicer(_ManagerApi, room_sessions_pb2_grpc.RoomSessionServiceServicer):
    """What signalling gateways call for the sessions they hold (room_sessions.proto RoomSessionService)."""

    def __init__(
        self,
        manager: RoomManager,
        dispatch: Callable[[], Awaitable[None]],
        licence: LicenceServiceStub,
        *,
        licence_timeout_s: float,
        recording: DefaultRecording | None = None,
    ) -> None:
        super().__init__(manager, dispatch)
        self._licence = licence
        self._licence_timeout_s = licence_timeout_s
        # Records an answered call's room when its app has autoRecord.
        self._recording = recording

    async def OpenSession(
        self, request: rooms_pb2.OpenSessionRequest, context: Context
    ) -> rooms_pb2.OpenSessionResponse:
        require_fields(session_id=request.session_id, biz_name=request.biz_name, uid=request.uid)
        async with self._operation() as manager:
            manager.open_session(
                request.session_id, request.biz_name, request.uid, _attachment(request.attachment)
            )
        return rooms_pb2.OpenSessionResponse()

    async def ResumeSession(
        self, request: rooms_pb2.ResumeSessionRequest, context: Context
    ) -> rooms_pb2.ResumeSessionResponse:
        require_fields(session_id=request.session_id, biz_name=request.biz_name, uid=request.uid)
        async with self._operation() as manager:
            room_id = manager.resume_session(
                request.session_id, request.biz_name, request.uid, _attachment(request.attachment)
            )
        return rooms_pb2.ResumeSessionResponse(room_id=room_id or "")

    async def DetachSession(
        self, request: rooms_pb2.DetachSessionRequest, context: Context
    ) -> rooms_pb2.DetachSessionResponse:
        async with self._operation() as manager:
            manager.detach_session(request.session_id, request.connection_id)
        return rooms_pb2.DetachSessionResponse()

    async def CloseSession(
        self, request: rooms_pb2.CloseSessionRequest, context: Context
    ) -> rooms_pb2.CloseSessionResponse:
        async with self._operation() as manager:
            manager.close_session(request.session_id, request.connection_id)
        return rooms_pb2.CloseSessionResponse()

    async def GatewayHeartbeat(
        self, request: rooms_pb2.GatewayHeartbeatRequest, context: Context
    ) -> rooms_pb2.GatewayHeartbeatResponse:
        require_fields(gateway_id=request.gateway_id, gateway_address=request.gateway_address)
        held = [HeldConnection(c.session_id, c.connection_id, c.biz_name, c.uid) for c in request.connections]
        async with self._operation() as manager:
            manager.heartbeat(request.gateway_id, request.gateway_address, held)
        return rooms_pb2.GatewayHeartbeatResponse(lease_s=manager.lease_s)

    async def JoinRoom(
        self, request: rooms_pb2.JoinRoomRequest, context: Context
    ) -> rooms_pb2.JoinRoomResponse:
        async with self._operation() as manager:
            room = manager.join_room(
                request.session_id,
                request.room_id,
                request.rtoken,
                request.engine if request.HasField("engine") else None,
            )
        return rooms_pb2.JoinRoomResponse(room=room.message(with_participants=False))

    async def LeaveRoom(
        self, request: rooms_pb2.LeaveRoomRequest, context: Context
    ) -> rooms_pb2.LeaveRoomResponse:
        async with self._operation() as manager:
            manager.leave_room(request.session_id)
        return rooms_pb2.LeaveRoomResponse()

    async def SendText(
        self, request: rooms_pb2.SendTextRequest, context: Context
    ) -> rooms_pb2.SendTextResponse:
        async with self._operation() as manager:
            msg_id = manager.send_text(request.session_id, list(request.peers), request.text)
        return rooms_pb2.SendTextResponse(msg_id=msg_id)

    async def Invite(self, request: rooms_pb2.InviteRequest, context: Context) -> rooms_pb2.InviteResponse:
        require_fields(uids=",".join(request.uids))
        async with self._operation() as manager:
            manager.invite(request.session_id, list(request.uids), request.extra)
        return rooms_pb2.InviteResponse()

    async def ReplyInvite(
        self, request: rooms_pb2.ReplyInviteRequest, context: Context
    ) -> rooms_pb2.ReplyInviteResponse:
        if request.reply not in tuple(InviteReply):
            raise INVALID_ARGUMENT("reply is 0 (answer), 1 (offline) or 2 (reject)")
        async with self._operation() as manager:
            manager.reply_invite(
                request.session_id, request.room_id, InviteReply(request.reply), request.inviter
            )
        return rooms_pb2.ReplyInviteResponse()

    async def StartPublish(
        self, request: rooms_pb2.StartPublishRequest, context: Context
    ) -> rooms_pb2.StartPublishResponse:
        if request.media_type not in (1, 2, 3):
            raise INVALID_ARGUMENT("media_type is 1 (audio and video), 2 (audio) or 3 (video)")
        async with self._operation() as manager:
            slot = manager.start_publish(
                request.session_id, request.media_type, request.tag, data_channel=request.data_channel
            )
        return rooms_pb2.StartPublishResponse(
            room_id=slot.room_id,
            biz_name=slot.biz_name,
            uid=slot.uid,
            feed_id=slot.feed_id,
            relay=_relay(slot),
        )

    async def CompletePublish(
        self, request: rooms_pb2.CompletePublishRequest, context: Context
    ) -> rooms_pb2.CompletePublishResponse:
        async with self._operation() as manager:
            manager.complete_publish(request.session_id, request.feed_id, messages.tracks(request.tracks))
        return rooms_pb2.CompletePublishResponse()

    async def CancelPublish(
        self, request: rooms_pb2.CancelPublishRequest, context: Context
    ) -> rooms_pb2.CancelPublishResponse:
        async with self._operation() as manager:
            manager.cancel_publish(request.session_id, request.feed_id)
        return rooms_pb2.CancelPublishResponse()

    async def Unpublish(
        self, request: rooms_pb2.UnpublishRequest, context: Context
    ) -> rooms_pb2.UnpublishResponse:
        async with self._operation() as manager:
            manager.unpublish(request.session_id, request.feed_id)
        return rooms_pb2.UnpublishResponse()

    async def StartSubscribe(
        self, request: rooms_pb2.StartSubscribeRequest, context: Context
    ) -> rooms_pb2.StartSubscribeResponse:
        async with self._operation() as manager:
            slot = manager.start_subscribe(
                request.session_id, request.feed_id, audio=request.audio, video=request.video
            )
        return rooms_pb2.StartSubscribeResponse(
            room_id=slot.room_id, biz_name=slot.biz_name, uid=slot.uid, relay=_relay(slot)
        )

    async def CompleteSubscribe(
        self, request: rooms_pb2.CompleteSubscribeRequest, context: Context
    ) -> rooms_pb2.CompleteSubscribeResponse:
        require_fields(subscription_id=request.subscription_id)
        async with self._operation() as manager:
            manager.complete_subscribe(
                request.session_id, request.feed_id, request.subscription_id, messages.tracks(request.tracks)
            )
        return rooms_pb2.CompleteSubscribeResponse()

    async def CancelSubscribe(
        self, request: rooms_pb2.CancelSubscribeRequest, context: Context
    ) -> rooms_pb2.CancelSubscribeResponse:
        async with self._operation() as manager:
            manager.cancel_subscribe(request.session_id, request.feed_id)
        return rooms_pb2.CancelSubscribeResponse()

    async def Unsubscribe(
        self, request: rooms_pb2.UnsubscribeRequest, context: Context
    ) -> rooms_pb2.UnsubscribeResponse:
        async with self._operation() as manager:
            manager.unsubscribe(request.session_id, request.feed_id)
        return rooms_pb2.UnsubscribeResponse()

    async def StartCall(
        self, request: rooms_pb2.StartCallRequest, context: Context
    ) -> rooms_pb2.StartCallResponse:
        if request.media not in tuple(CallMedia):
            raise INVALID_ARGUMENT("media is 1 (audio) or 2 (audio and video)")
        # A busy line is refused before the licence service is asked; `start` checks again, for calls
        # started while it answered.
        caller = self._manager.check_free(request.session_id)
        # A device calls a user (request.open_id), or a user calls a device (request.sn, seed 003
        # initByCaller): either way the user must have authorised the device, as seed 000 checks.
        sn, open_id = (request.sn, caller.uid) if request.sn else (caller.uid, request.open_id)
        try:
            licensed = await self._licence.CheckDeviceCall(
                licence_pb2.CheckDeviceCallRequest(sn=sn, open_id=open_id, model_id=request.model_id),
                timeout=self._licence_timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            refused = from_rpc_error(error)
            # -2 is seed 000's code for the calling device; a phone calling it has -14 instead.
            if request.sn and refused.code == DEVICE_ID_INVALID_CODE:
                raise CALLED_DEVICE_INVALID(refused.message) from None
            raise refused from None
        # Seed 000 activates a device as an audio-call or a video-call device (voip_activate_type_e).
        if request.media == CallMedia.VIDEO and licensed.type == licence_pb2.LICENCE_TYPE_AUDIO_CALL:
            raise CALL_MEDIA_NOT_LICENSED(f"device {sn} makes and takes audio calls only")
        async with self._operation() as manager:
            call = manager.start_call(request.session_id, messages.call_order(request))
        return rooms_pb2.StartCallResponse(call_id=call.call_id)

    async def AnswerCall(
        self, request: rooms_pb2.CallRequest, context: Context
    ) -> rooms_pb2.AnswerCallResponse:
        async with self._operation() as manager:
            room = manager.answer_call(request.session_id, request.call_id)
        # Seed 002 云端自动录制 records a call from when it connects. The call is already answered: a
        # recording that cannot start is told to the room rather than undoing the call.
        if self._recording is not None and await self._recording.wanted(room):
            await self._recording.start(room, strong_depend=False)
        return rooms_pb2.AnswerCallResponse(room_id=room.room_id, rtoken=room.rtoken)

    async def RejectCall(self, request: rooms_pb2.CallRequest, context: Context) -> rooms_pb2.CallResponse:
        async with self._operation() as manager:
            manager.reject_call(request.session_id, request.call_id)
        return rooms_pb2.CallResponse()

    async def HangUp(self, request: rooms_pb2.CallRequest, context: Context) -> rooms_pb2.CallResponse:
        async with self._operation() as manager:
            manager.hang_up(request.session_id, request.call_id)
        return rooms_pb2.CallResponse()

    async def IsBusy(self, request: rooms_pb2.IsBusyRequest, context: Context) -> rooms_pb2.IsBusyResponse:
        return rooms_pb2.IsBusyResponse(busy=self._manager.is_busy(request.session_id))

    async def SendP2PSignal(
        self, request: rooms_pb2.SendP2PSignalRequest, context: Context
    ) -> rooms_pb2.SendP2PSignalResponse:
        require_fields(to=request.to)
        signal = messages.p2p_signal(request.signal)
        async with self._operation() as manager:
            manager.send_p2p_signal(request.session_id, request.to, signal)
        return rooms_pb2.SendP2PSignalResponse()

    async def MuteLocal(
        self, request: rooms_pb2.MuteLocalRequest, context: Context
    ) -> rooms_pb2.MuteLocalResponse:
        kind = kind_name(request.kind)
        async with self._operation() as manager:
            target = manager.mute_local(request.session_id, request.feed_id, kind, request.muted)
        return rooms_pb2.MuteLocalResponse(
            room_id=target.room_id, relay=rooms_pb2.RelayRef(address=target.relay_address)
        )

    async def MuteRemote(
        self, request: rooms_pb2.MuteRemoteRequest, context: Context
    ) -> rooms_pb2.MuteRemoteResponse:
        kind = kind_name(request.kind)
        async with self._operation() as manager:
            target = manager.mute_remote(request.session_id, request.feed_id, kind, request.muted)
        return rooms_pb2.MuteRemoteResponse(
            room_id=target.room_id,
            relay=rooms_pb2.RelayRef(address=target.relay_address),
            subscription_id=target.subscription_id,
        )


class RelayReportServicer(_ManagerApi, relay_reports_pb2_grpc.RelayReportServiceServicer):
    """What media relays report (relay_reports.proto RelayReportService)."""

    async def RegisterRelay(
        self, request: rooms_pb2.RegisterRelayRequest, context: Context
    ) -> rooms_pb2.RegisterRelayResponse:
        require_fields(relay_id=request.relay_id, address=request.address)
        lease_s = self._manager.register_relay(
            request.relay_id, request.address, request.capacity, _load(request.load)
        )
        return rooms_pb2.RegisterRelayResponse(lease_s=lease_s)

    async def ReportRelayLoad(
        self, request: rooms_pb2.ReportRelayLoadRequest, context: Context
    ) -> rooms_pb2.ReportRelayLoadResponse:
        self._manager.report_relay_load(request.relay_id, _load(request.load))
        return rooms_pb2.ReportRelayLoadResponse()

    async def ReportStreamClosed(
        self, request: rooms_pb2.ReportStreamClosedRequest, context: Context
    ) -> rooms_pb2.ReportStreamClosedResponse:
        stream = request.stream
        require_fields(room_id=stream.room_id, feed_id=stream.feed_id)
        if request.code not in tuple(MediaCloseCode):
            raise INVALID_ARGUMENT(f"code {request.code} is not an on_media_close code (5001-5012)")
        async with self._operation() as manager:
            manager.stream_closed(
                stream.room_id,
                stream.feed_id,
                stream.subscription_id,
                stream.uid,
                MediaCloseCode(request.code),
            )
        return rooms_pb2.ReportStreamClosedResponse()

    async def ReportNetworkWeak(
        self, request: rooms_pb2.ReportNetworkWeakRequest, context: Context
    ) -> rooms_pb2.ReportNetworkWeakResponse:
        stream = request.stream
        require_fields(room_id=stream.room_id, feed_id=stream.feed_id)
        async with self._operation() as manager:
            manager.network_weak(
                stream.room_id,
                stream.feed_id,
                stream.subscription_id,
                stream.uid,
                bps_send=request.bps_send,
                bps_recv=request.bps_recv,
            )
        return rooms_pb2.ReportNetworkWeakResponse()
