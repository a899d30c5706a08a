"""The room manager as the recorder sees it: the room directory (room_directory.py) over GetRoom, and
the facts that change rooms (parley.feed.v1, parley.room.v1) handed to the recorder."""

from __future__ import annotations

from typing import TypeVar

import grpc
import structlog
from faststream.kafka import KafkaBroker
from google.protobuf.message import DecodeError, Message
from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.errors import UNAVAILABLE
from services.core.events import EventBatchConsumer, RawEvent
from services.core.topics import Topic
from services.recorder.capture import FeedSource
from services.recorder.recorder import Recorder
from services.recorder.room_directory import RoomView

log = structlog.get_logger(__name__)
EventT = TypeVar("EventT", bound=Message)

_FEED_PUBLISHED = events_pb2.FeedPublished.DESCRIPTOR.full_name
_FEED_UNPUBLISHED = events_pb2.FeedUnpublished.DESCRIPTOR.full_name
_PARTICIPANT_LEFT = events_pb2.ParticipantLeft.DESCRIPTOR.full_name
_ROOM_DESTROYED = events_pb2.RoomDestroyed.DESCRIPTOR.full_name


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


def _decoded(event_type: type[EventT], raw: RawEvent) -> EventT | None:
    """The event, or None (logged) when its payload cannot be read: skipped, so it cannot stall its
    partition by failing its batch again and again."""
    try:
        return event_type.FromString(raw.payload)
    except DecodeError:
        log.warning(
            "event_skipped", reason="undecodable payload", ce_id=raw.envelope.id, ce_type=raw.envelope.type
        )
        return None


def consume_room_facts(broker: KafkaBroker, recorder: Recorder) -> None:
    """Feeds published after a recording started are recorded too; a feed that ends closes its file; the
    caller leaving (endType 0) or the room destroyed stops its recording.

    In batches, and picked by `ce_type` before anything is decoded: the recorder acts on four kinds of fact
    and reads two busy topics, where every join brings a ParticipantJoined it has no use for. One batch is
    one offset commit; a batch whose handling fails comes again whole (the handlers are idempotent: they
    act on the live jobs as they are)."""

    async def feed_facts(events: list[RawEvent]) -> None:
        for raw in events:
            if raw.envelope.type == _FEED_PUBLISHED:
                if (published := _decoded(events_pb2.FeedPublished, raw)) is None:
                    continue
                await recorder.feed_published(
                    published.room_id,
                    FeedSource(published.feed_id, published.uid, published.media_type, published.tag),
                )
            elif raw.envelope.type == _FEED_UNPUBLISHED:
                if (unpublished := _decoded(events_pb2.FeedUnpublished, raw)) is None:
                    continue
                await recorder.feed_unpublished(unpublished.room_id, unpublished.feed_id)

    async def room_facts(events: list[RawEvent]) -> None:
        for raw in events:
            if raw.envelope.type == _PARTICIPANT_LEFT:
                if (left := _decoded(events_pb2.ParticipantLeft, raw)) is None:
                    continue
                await recorder.participant_left(left.room_id, left.uid)
            elif raw.envelope.type == _ROOM_DESTROYED:
                if (destroyed := _decoded(events_pb2.RoomDestroyed, raw)) is None:
                    continue
                await recorder.room_destroyed(destroyed.room_id)

    # The group ids of the per-event consumers these replace: their committed offsets carry over.
    EventBatchConsumer(broker, [Topic.FEED], feed_facts, group_id="parley-recorder-feeds")
    EventBatchConsumer(broker, [Topic.ROOM], room_facts, group_id="parley-recorder-rooms")
