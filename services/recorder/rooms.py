"""The room manager as the recorder sees it: the room directory (room_directory.py) over GetRoom, and
the facts that change rooms (parley.feed.v1, parley.room.v1) handed to the recorder."""

from __future__ import annotations

import grpc
from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.errors import UNAVAILABLE
from services.core.events import Envelope, EventConsumer
from services.recorder.capture import FeedSource
from services.recorder.recorder import Recorder
from services.recorder.room_directory import RoomView


class RoomManagerRooms:
    def __init__(self, rooms: RoomServiceStub, *, timeout_s: float) -> None:
        self._rooms = rooms
        self._timeout_s = timeout_s

    async def get(self, room_id: str) -> RoomView | None:
        try:
            room = await self._rooms.GetRoom(
                rooms_pb2.GetRoomRequest(room_id=room_id), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise UNAVAILABLE(f"room manager: {error.code().name}") from None
        return RoomView(
            room_id=room.room_id,
            biz_name=room.biz_name,
            relay_address=room.relay_address,
            participants=frozenset(participant.uid for participant in room.participants),
            feeds=tuple(
                FeedSource(feed.feed_id, feed.uid, feed.media_type, feed.tag)
                for participant in room.participants
                for feed in participant.feeds
            ),
        )


def consume_room_facts(feeds: EventConsumer, rooms: EventConsumer, recorder: Recorder) -> None:
    """Feeds published after a recording started are recorded too; a feed that ends closes its file; the
    caller leaving (endType 0) or the room destroyed stops its recording."""

    @feeds.on(events_pb2.FeedPublished)
    async def published(event: events_pb2.FeedPublished, envelope: Envelope) -> None:
        await recorder.feed_published(
            event.room_id, FeedSource(event.feed_id, event.uid, event.media_type, event.tag)
        )

    @feeds.on(events_pb2.FeedUnpublished)
    async def unpublished(event: events_pb2.FeedUnpublished, envelope: Envelope) -> None:
        await recorder.feed_unpublished(event.room_id, event.feed_id)

    @rooms.on(events_pb2.ParticipantLeft)
    async def left(event: events_pb2.ParticipantLeft, envelope: Envelope) -> None:
        await recorder.participant_left(event.room_id, event.uid)

    @rooms.on(events_pb2.RoomDestroyed)
    async def destroyed(event: events_pb2.RoomDestroyed, envelope: Envelope) -> None:
        await recorder.room_destroyed(event.room_id)
