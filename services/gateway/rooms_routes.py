"""Operator routes for rooms (the server API: rooms created by an app's backend)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc
from pydantic import Field

from services.gateway.http_api import ApiModel

RPC_TIMEOUT_S = 5


class CreateRoomBody(ApiModel):
    biz_name: str = Field(min_length=1, max_length=128)
    uid: str = Field(min_length=1, max_length=128)
    # Seed 002 config_param `engine`: 0 SFU (default), 2 P2P; the room manager refuses anything else.
    engine: int = 0


class FeedOut(ApiModel):
    feed_id: str
    tag: str
    # 1 audio and video, 2 audio only, 3 video only (seed 002 Publish `media_type`).
    media_type: int


class ParticipantOut(ApiModel):
    uid: str
    user_type: int
    feeds: list[FeedOut]


class RoomOut(ApiModel):
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: str
    engine: int


class LiveRoomOut(RoomOut):
    participants: list[ParticipantOut]
    # The gRPC address of the relay serving the room's media; empty until its first publish or subscribe.
    relay_address: str


def _room(room: rooms_pb2.Room) -> RoomOut:
    return RoomOut(
        room_id=room.room_id,
        rtoken=room.rtoken,
        biz_name=room.biz_name,
        creator_uid=room.creator_uid,
        created_at=room.created_at.ToJsonString(),
        engine=room.engine,
    )


def _live_room(room: rooms_pb2.Room) -> LiveRoomOut:
    return LiveRoomOut(
        **_room(room).model_dump(),
        participants=[
            ParticipantOut(
                uid=participant.uid,
                user_type=participant.user_type,
                feeds=[
                    FeedOut(feed_id=feed.feed_id, tag=feed.tag, media_type=feed.media_type)
                    for feed in participant.feeds
                ],
            )
            for participant in room.participants
        ],
        relay_address=room.relay_address,
    )


def rooms_router(rooms: rooms_pb2_grpc.RoomServiceStub) -> APIRouter:
    router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

    @router.post("", status_code=201, summary="Create a room")
    async def create_room(body: CreateRoomBody) -> RoomOut:
        response = await rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(biz_name=body.biz_name, creator_uid=body.uid, engine=body.engine),
            timeout=RPC_TIMEOUT_S,
        )
        return _room(response.room)

    @router.get("", summary="The live rooms of an app (every app's without bizName), oldest first")
    async def list_rooms(biz_name: str = Query("", alias="bizName", max_length=128)) -> list[LiveRoomOut]:
        answer = await rooms.ListRooms(rooms_pb2.ListRoomsRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S)
        return [_live_room(room) for room in answer.rooms]

    @router.get("/{room_id}", summary="A live room: its participants, their feeds and its relay")
    async def get_room(room_id: str) -> LiveRoomOut:
        return _live_room(
            await rooms.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=RPC_TIMEOUT_S)
        )

    @router.delete(
        "/{room_id}", status_code=204, summary="Close a room: everyone is taken out, then it is destroyed"
    )
    async def close_room(room_id: str) -> None:
        await rooms.CloseRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=RPC_TIMEOUT_S)

    @router.delete(
        "/{room_id}/participants/{uid}",
        status_code=204,
        summary="Kick a participant: it hears OnLeaveRoom leaveType 3, the others that it left",
    )
    async def kick(room_id: str, uid: str) -> None:
        await rooms.RemoveParticipant(
            rooms_pb2.RemoveParticipantRequest(room_id=room_id, uid=uid), timeout=RPC_TIMEOUT_S
        )

    return router
