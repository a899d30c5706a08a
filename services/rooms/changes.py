"""The facts the room manager reports: the messages of proto/parley/rooms/v1/events.proto, which the rules
build directly (the proto is the one definition of each fact), and the topic each goes to.

Rooms and participants go to `parley.room.v1`, feeds and subscriptions to `parley.feed.v1`, keyed by
room_id; device calls to `parley.call.v1`, keyed by call_id (a ringing call has no room yet).
services/rooms/facts.py publishes them in the order they happened.
"""

from __future__ import annotations

from parley.rooms.v1 import events_pb2

from services.core.topics import Topic

Change = (
    events_pb2.RoomCreated
    | events_pb2.RoomDestroyed
    | events_pb2.ParticipantJoined
    | events_pb2.ParticipantLeft
    | events_pb2.FeedPublished
    | events_pb2.FeedUnpublished
    | events_pb2.SubscriptionStarted
    | events_pb2.SubscriptionEnded
    | events_pb2.CallStarted
    | events_pb2.CallAnswered
    | events_pb2.CallEnded
)

TOPICS: dict[type[Change], Topic] = {
    events_pb2.RoomCreated: Topic.ROOM,
    events_pb2.RoomDestroyed: Topic.ROOM,
    events_pb2.ParticipantJoined: Topic.ROOM,
    events_pb2.ParticipantLeft: Topic.ROOM,
    events_pb2.FeedPublished: Topic.FEED,
    events_pb2.FeedUnpublished: Topic.FEED,
    events_pb2.SubscriptionStarted: Topic.FEED,
    events_pb2.SubscriptionEnded: Topic.FEED,
    events_pb2.CallStarted: Topic.CALL,
    events_pb2.CallAnswered: Topic.CALL,
    events_pb2.CallEnded: Topic.CALL,
}


def change_topic(change: Change) -> Topic:
    return TOPICS[type(change)]


def change_key(change: Change) -> str:
    """Room facts are keyed by room, call facts by call: a ringing call has no room yet."""
    if isinstance(change, events_pb2.CallStarted | events_pb2.CallAnswered | events_pb2.CallEnded):
        return change.call_id
    return change.room_id
