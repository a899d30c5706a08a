"""Operator routes for rooms (the server API: rooms created by an app's backend)."""

from __future__ import annotations

from fastapi import APIRouter
from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc
from pydantic import Field

from services.gateway.http_api import ApiModel

RPC_TIMEOUT_S = 5


class CreateRoomBody(ApiModel):
    biz_name: str = Field(min_length=1, max_length=128)
    uid: str = Field(min_length=1, max_length=128)
    # Seed 002 config_param `engine`: 0 SFU (default), 2 P2P; the room manager refuses anything else.
    engine: int = 0


class RoomOut(ApiModel):
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: str
    engine: int


def rooms_router(rooms: rooms_pb2_grpc.RoomServiceStub) -> APIRouter:
    router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

    @router.post("", status_code=201, summary="Create a room")
    async def create_room(body: CreateRoomBody) -> RoomOut:
        response = await rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(biz_name=body.biz_name, creator_uid=body.uid, engine=body.engine),
            timeout=RPC_TIMEOUT_S,
        )
        room = response.room
        return RoomOut(
            room_id=room.room_id,
            rtoken=room.rtoken,
            biz_name=room.biz_name,
            creator_uid=room.creator_uid,
            created_at=room.created_at.ToJsonString(),
            engine=room.engine,
        )

    return router
