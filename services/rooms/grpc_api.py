"""gRPC handlers of the room manager: translate messages, call the registry, publish the facts."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from parley.rooms.v1 import events_pb2, rooms_pb2, rooms_pb2_grpc

from services.core.events import EventPublisher
from services.core.topics import Topic
from services.rooms.registry import LiveRoom, RoomRegistry


def _timestamp(room: LiveRoom) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(room.created_at)
    return stamp


def _room_message(room: LiveRoom) -> rooms_pb2.Room:
    return rooms_pb2.Room(
        room_id=room.room_id,
        rtoken=room.rtoken,
        biz_name=room.biz_name,
        creator_uid=room.creator_uid,
        created_at=_timestamp(room),
    )


class RoomServicer(rooms_pb2_grpc.RoomServiceServicer):
    def __init__(self, registry: RoomRegistry, events: EventPublisher) -> None:
        self._registry = registry
        self._events = events

    async def CreateRoom(
        self, request: rooms_pb2.CreateRoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.CreateRoomResponse:
        room = self._registry.create(biz_name=request.biz_name, creator_uid=request.creator_uid)
        await self._events.publish(
            Topic.ROOM,
            events_pb2.RoomCreated(
                room_id=room.room_id,
                biz_name=room.biz_name,
                creator_uid=room.creator_uid,
                created_at=_timestamp(room),
            ),
            key=room.room_id,
        )
        return rooms_pb2.CreateRoomResponse(room=_room_message(room))

    async def GetRoom(
        self, request: rooms_pb2.GetRoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.Room:
        return _room_message(self._registry.get(request.room_id))
