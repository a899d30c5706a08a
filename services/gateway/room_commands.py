"""The room commands of protocol v1: rooms, text, invitations, publish/subscribe, and mutes.

Room state lives in the room manager; these commands validate their params, call it for the session, and
answer. Publish and subscribe take three steps: the room manager reserves the feed (or the subscription)
and names the relay that serves the room, the gateway sends the client's SDP offer to that relay, and the
room manager records the outcome (`MediaNegotiation`, one sequence for both). Whoever negotiated cleans up
when a later step fails: the gateway cancels the reservation, or stops at the relay what the room manager
would not record.

Mutes (seed 002 muteLocalAudio / muteLocalVideo / muteRemoteAudio / muteRemoteVideo, in snake_case) take
two: the room manager checks and records the mute and names the relay, and the gateway tells the relay.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import grpc
import structlog
from opentelemetry.trace import TracerProvider
from parley.relay.v1 import relay_pb2
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub
from parley.rooms.v1 import rooms_pb2
from parley.rooms.v1.room_sessions_pb2_grpc import RoomSessionServiceStub
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub
from pydantic import BaseModel, ConfigDict, StrictBool

from services.core.channels import ChannelPool
from services.core.errors import ErrorKind, ParleyError, from_rpc_error
from services.core.media.kinds import MEDIA_KIND
from services.core.media.sdp import offers_data_channel
from services.core.shared_errors import SESSION_UNKNOWN
from services.gateway.commands import Command
from services.gateway.errors import (
    CREATE_ROOM_TIMEOUT,
    INVITE_INVALID_PARAMS,
    JOIN_INVALID_PARAMS,
    JOIN_ROOM_TIMEOUT,
)
from services.gateway.protocol import (
    CreateRoom,
    FeedCommand,
    Invite,
    JoinRoom,
    Name,
    Publish,
    ReplyInvite,
    SendText,
    Subscribe,
    parse_params,
)
from services.gateway.room_sessions import RoomSessions
from services.gateway.sessions import Session

log = structlog.get_logger(__name__)

AnswerT = TypeVar("AnswerT")


class Mute(BaseModel):
    """`mute_local_*`: a feed this session publishes; `mute_remote_*`: a feed it subscribes to."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    feed_id: Name
    muted: StrictBool


class RelayChannels:
    """Channels to the relays the room manager names, by address."""

    def __init__(self, tracer_provider: TracerProvider) -> None:
        self._channels = ChannelPool(tracer_provider)

    def stub(self, address: str) -> RelayServiceStub:
        return RelayServiceStub(self._channels.get(address))

    async def close(self) -> None:
        await self._channels.close()


async def ask_rooms(
    room_sessions: RoomSessions,
    session: Session,
    call: Callable[[], Awaitable[AnswerT]],
    *,
    timed_out: ErrorKind | None = None,
) -> AnswerT:
    """Call the room manager for `session`; a session it does not know is opened again, once."""
    for attempt in (1, 2):
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED and timed_out is not None:
                raise timed_out() from None
            refusal = from_rpc_error(error)
            if refusal.kind != SESSION_UNKNOWN or attempt == 2:
                raise refusal from None
            await room_sessions.reopen(session)
    raise AssertionError("unreachable")


# What the room manager answers a reservation with: where to negotiate, and for whom.
SlotT = TypeVar("SlotT", rooms_pb2.StartPublishResponse, rooms_pb2.StartSubscribeResponse)
RelayAnswerT = TypeVar("RelayAnswerT")


@dataclass(frozen=True)
class MediaNegotiation(Generic[SlotT, RelayAnswerT]):
    """The calls of one publish or subscribe, which `RoomCommands._negotiate` makes in their order: reserve
    at the room manager, negotiate the offer at the relay it names, complete at the room manager; or undo:
    cancel the reservation when the relay refused, stop at the relay what the room manager would not
    complete. `what` names it in the logs of a failed undo."""

    what: str
    reserve: Callable[[], Awaitable[SlotT]]
    negotiate: Callable[[RelayServiceStub, SlotT], Awaitable[RelayAnswerT]]
    complete: Callable[[SlotT, RelayAnswerT], Awaitable[object]]
    cancel: Callable[[SlotT], Awaitable[object]]
    stop: Callable[[RelayServiceStub, SlotT, RelayAnswerT], Awaitable[object]]


class RoomCommands:
    def __init__(
        self,
        public_rooms: RoomServiceStub,
        rooms: RoomSessionServiceStub,
        room_sessions: RoomSessions,
        relays: RelayChannels,
        *,
        timeout_s: float,
        relay_timeout_s: float,
    ) -> None:
        """`public_rooms` creates rooms (the public API: a session's user creates one as an app's backend
        would); `rooms` is the room manager's API for the sessions this gateway holds."""
        self._public_rooms = public_rooms
        self._rooms = rooms
        self._room_sessions = room_sessions
        self._relays = relays
        self._timeout_s = timeout_s
        self._relay_timeout_s = relay_timeout_s

    def commands(self) -> dict[str, Command]:
        return {
            "create_room": Command(self._create_room),
            "join_room": Command(self._join_room),
            "leave_room": Command(self._leave_room),
            "send_text": Command(self._send_text),
            "invite": Command(self._invite),
            "reply_invite": Command(self._reply_invite),
            "publish": Command(self._publish),
            "unpublish": Command(self._unpublish),
            "subscribe": Command(self._subscribe),
            "unsubscribe": Command(self._unsubscribe),
            "mute_local_audio": Command(partial(self._mute_local, kind="audio")),
            "mute_local_video": Command(partial(self._mute_local, kind="video")),
            "mute_remote_audio": Command(partial(self._mute_remote, kind="audio")),
            "mute_remote_video": Command(partial(self._mute_remote, kind="video")),
        }

    async def _ask(
        self, session: Session, call: Callable[[], Awaitable[AnswerT]], *, timed_out: ErrorKind | None = None
    ) -> AnswerT:
        return await ask_rooms(self._room_sessions, session, call, timed_out=timed_out)

    async def _create_room(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        create = parse_params(CreateRoom, params)
        ext = create.ext
        record = rooms_pb2.RecordOptions(
            default_record=ext.default_record,
            record_strong_depend=ext.record_strong_depend,
            record_param_json=json.dumps(ext.record_param) if ext.record_param is not None else "",
            record_third_id=ext.record_third_id,
            file_path=ext.file_path,
        )
        created = await self._ask(
            session,
            lambda: self._public_rooms.CreateRoom(
                rooms_pb2.CreateRoomRequest(session_id=session.id, record=record, engine=create.engine),
                timeout=self._timeout_s,
            ),
            timed_out=CREATE_ROOM_TIMEOUT,
        )
        return {
            "room_id": created.room.room_id,
            "rtoken": created.room.rtoken,
            "record_id": created.record_id,
            "record_third_id": ext.record_third_id,
        }

    async def _join_room(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        join = parse_params(JoinRoom, params, JOIN_INVALID_PARAMS)
        joined = await self._ask(
            session,
            lambda: self._rooms.JoinRoom(
                rooms_pb2.JoinRoomRequest(
                    session_id=session.id, room_id=join.room_id, rtoken=join.rtoken, engine=join.engine
                ),
                timeout=self._timeout_s,
            ),
            timed_out=JOIN_ROOM_TIMEOUT,
        )
        return {"room_id": joined.room.room_id, "engine": joined.room.engine}

    async def _leave_room(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        await self._ask(
            session,
            lambda: self._rooms.LeaveRoom(
                rooms_pb2.LeaveRoomRequest(session_id=session.id), timeout=self._timeout_s
            ),
        )
        return {}

    async def _send_text(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        text = parse_params(SendText, params)
        sent = await self._ask(
            session,
            lambda: self._rooms.SendText(
                rooms_pb2.SendTextRequest(session_id=session.id, peers=text.peers, text=text.text),
                timeout=self._timeout_s,
            ),
        )
        return {"msg_id": sent.msg_id}

    async def _invite(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        invite = parse_params(Invite, params, INVITE_INVALID_PARAMS)
        await self._ask(
            session,
            lambda: self._rooms.Invite(
                rooms_pb2.InviteRequest(session_id=session.id, uids=invite.uids, extra=invite.extra),
                timeout=self._timeout_s,
            ),
        )
        return {}

    async def _reply_invite(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        reply = parse_params(ReplyInvite, params)
        await self._ask(
            session,
            lambda: self._rooms.ReplyInvite(
                rooms_pb2.ReplyInviteRequest(
                    session_id=session.id,
                    room_id=reply.room_id,
                    reply=reply.reply,
                    inviter=reply.inviter or "",
                ),
                timeout=self._timeout_s,
            ),
        )
        return {}

    async def _publish(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        publish = parse_params(Publish, params)
        request = rooms_pb2.StartPublishRequest(
            session_id=session.id,
            media_type=publish.media_type,
            tag=publish.tag,
            # The room manager answers -203 for a DataChannel outside P2P mode (seed 002 6.3.4).
            data_channel=offers_data_channel(publish.sdp),
        )
        slot, answer = await self._negotiate(
            session,
            MediaNegotiation(
                "publish",
                reserve=lambda: self._rooms.StartPublish(request, timeout=self._timeout_s),
                negotiate=lambda relay, slot: relay.Publish(
                    relay_pb2.PublishRequest(
                        biz_name=slot.biz_name,
                        room_id=slot.room_id,
                        uid=slot.uid,
                        feed_id=slot.feed_id,
                        sdp_offer=publish.sdp,
                    ),
                    timeout=self._relay_timeout_s,
                ),
                complete=lambda slot, answer: self._rooms.CompletePublish(
                    rooms_pb2.CompletePublishRequest(
                        session_id=session.id, feed_id=slot.feed_id, tracks=answer.tracks
                    ),
                    timeout=self._timeout_s,
                ),
                cancel=lambda slot: self._rooms.CancelPublish(
                    rooms_pb2.CancelPublishRequest(session_id=session.id, feed_id=slot.feed_id),
                    timeout=self._timeout_s,
                ),
                stop=lambda relay, slot, answer: relay.Unpublish(
                    relay_pb2.UnpublishRequest(room_id=slot.room_id, feed_id=slot.feed_id),
                    timeout=self._relay_timeout_s,
                ),
            ),
        )
        return {"feed_id": slot.feed_id, "sdp": answer.sdp_answer}

    async def _unpublish(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        feed = parse_params(FeedCommand, params)
        await self._ask(
            session,
            lambda: self._rooms.Unpublish(
                rooms_pb2.UnpublishRequest(session_id=session.id, feed_id=feed.feed_id),
                timeout=self._timeout_s,
            ),
        )
        return {}

    async def _subscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        subscribe = parse_params(Subscribe, params)
        feed_id = subscribe.feed_id
        request = rooms_pb2.StartSubscribeRequest(
            session_id=session.id, feed_id=feed_id, audio=subscribe.audio, video=subscribe.video
        )
        _, answer = await self._negotiate(
            session,
            MediaNegotiation(
                "subscribe",
                reserve=lambda: self._rooms.StartSubscribe(request, timeout=self._timeout_s),
                negotiate=lambda relay, slot: relay.Subscribe(
                    relay_pb2.SubscribeRequest(
                        biz_name=slot.biz_name,
                        room_id=slot.room_id,
                        uid=slot.uid,
                        feed_id=feed_id,
                        sdp_offer=subscribe.sdp,
                        audio=subscribe.audio,
                        video=subscribe.video,
                    ),
                    timeout=self._relay_timeout_s,
                ),
                complete=lambda slot, answer: self._rooms.CompleteSubscribe(
                    rooms_pb2.CompleteSubscribeRequest(
                        session_id=session.id,
                        feed_id=feed_id,
                        subscription_id=answer.subscription_id,
                        tracks=answer.tracks,
                    ),
                    timeout=self._timeout_s,
                ),
                cancel=lambda slot: self._rooms.CancelSubscribe(
                    rooms_pb2.CancelSubscribeRequest(session_id=session.id, feed_id=feed_id),
                    timeout=self._timeout_s,
                ),
                stop=lambda relay, slot, answer: relay.Unsubscribe(
                    relay_pb2.UnsubscribeRequest(
                        room_id=slot.room_id, subscription_id=answer.subscription_id
                    ),
                    timeout=self._relay_timeout_s,
                ),
            ),
        )
        return {"feed_id": feed_id, "subscription_id": answer.subscription_id, "sdp": answer.sdp_answer}

    async def _negotiate(
        self, session: Session, negotiation: MediaNegotiation[SlotT, RelayAnswerT]
    ) -> tuple[SlotT, RelayAnswerT]:
        slot = await self._ask(session, negotiation.reserve)
        relay = self._relays.stub(slot.relay.address)
        try:
            answer = await negotiation.negotiate(relay, slot)
        except grpc.aio.AioRpcError as error:
            await self._quietly(f"cancel_{negotiation.what}", negotiation.cancel(slot))
            raise from_rpc_error(error) from None
        try:
            await self._ask(session, lambda: negotiation.complete(slot, answer))
        except ParleyError:
            await self._quietly(f"relay_un{negotiation.what}", negotiation.stop(relay, slot, answer))
            raise
        return slot, answer

    async def _unsubscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        feed = parse_params(FeedCommand, params)
        await self._ask(
            session,
            lambda: self._rooms.Unsubscribe(
                rooms_pb2.UnsubscribeRequest(session_id=session.id, feed_id=feed.feed_id),
                timeout=self._timeout_s,
            ),
        )
        return {}

    async def _mute_local(self, session: Session, params: dict[str, Any], *, kind: str) -> dict[str, Any]:
        mute = parse_params(Mute, params)
        target = await self._ask(
            session,
            lambda: self._rooms.MuteLocal(
                rooms_pb2.MuteLocalRequest(
                    session_id=session.id, feed_id=mute.feed_id, kind=MEDIA_KIND[kind], muted=mute.muted
                ),
                timeout=self._timeout_s,
            ),
        )
        await self._tell_relay(
            self._relays.stub(target.relay.address).SetFeedPaused(
                relay_pb2.SetFeedPausedRequest(
                    room_id=target.room_id, feed_id=mute.feed_id, kind=MEDIA_KIND[kind], paused=mute.muted
                ),
                timeout=self._relay_timeout_s,
            )
        )
        return {"feed_id": mute.feed_id, "muted": mute.muted}

    async def _mute_remote(self, session: Session, params: dict[str, Any], *, kind: str) -> dict[str, Any]:
        mute = parse_params(Mute, params)
        target = await self._ask(
            session,
            lambda: self._rooms.MuteRemote(
                rooms_pb2.MuteRemoteRequest(
                    session_id=session.id, feed_id=mute.feed_id, kind=MEDIA_KIND[kind], muted=mute.muted
                ),
                timeout=self._timeout_s,
            ),
        )
        await self._tell_relay(
            self._relays.stub(target.relay.address).SetSubscriptionPaused(
                relay_pb2.SetSubscriptionPausedRequest(
                    room_id=target.room_id,
                    subscription_id=target.subscription_id,
                    kind=MEDIA_KIND[kind],
                    paused=mute.muted,
                ),
                timeout=self._relay_timeout_s,
            )
        )
        return {"feed_id": mute.feed_id, "muted": mute.muted}

    @staticmethod
    async def _tell_relay(call: Awaitable[object]) -> None:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    @staticmethod
    async def _quietly(what: str, call: Awaitable[object]) -> None:
        """A clean-up after a failure: its own failure is logged; the client hears the first one."""
        try:
            await call
        except grpc.aio.AioRpcError as error:
            log.warning("cleanup_failed", what=what, status=error.code().name)
