"""The room manager's stream control, without transport: what it does with a relay's reports of streams it
closed on its own and of weak networks, and with mutes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, rooms_pb2
from test_room_manager import AUDIO_VIDEO, RELAY, World, kinds, publish, room_with, subscribe

from services.core.errors import ParleyError
from services.rooms.pushes import MediaCloseCode
from services.rooms.room import MuteTarget


def change_codes(changes: Sequence[object]) -> list[tuple[str, int | None]]:
    return [(type(c).__name__, getattr(c, "code", None)) for c in changes]


def codes(world: World) -> list[tuple[str, int | None]]:
    return change_codes(world.take_outcome().changes)


def alices_feed_watched_by_bob(world: World) -> tuple[str, str, str, list[str]]:
    """A room of alice, bob and carol where alice publishes a feed and bob subscribes to it, every push so
    far taken: the room id, the feed id, bob's subscription id and the three sessions."""
    room_id, _, (alice, bob, carol) = room_with(world, "alice", "bob", "carol")
    feed_id = publish(world, alice)
    bobs = subscribe(world, bob, feed_id)
    for session in (alice, bob, carol):
        world.pushes(session)
    return room_id, feed_id, bobs, [alice, bob, carol]


@pytest.mark.parametrize(
    "code", [MediaCloseCode.CONNECT_TIMEOUT, MediaCloseCode.LINK_CLOSED, MediaCloseCode.LINK_FAILED]
)
def test_a_feed_the_relay_closed_ends_as_an_unpublish_told_with_the_relays_code(
    world: World, code: MediaCloseCode
) -> None:
    room_id, feed_id, bobs, (alice, bob, carol) = alices_feed_watched_by_bob(world)
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=feed_id, tag="cam", media_type=1)
    world.take_outcome()

    world.manager.stream_closed(room_id, feed_id, "", "alice", code)

    assert world.pushes(alice) == [
        delivery_pb2.MediaClosed(room_id=room_id, code=code, feed_id=feed_id, subscription_id="")
    ]
    assert world.pushes(bob) == [
        delivery_pb2.Unpublished(room_id=room_id, feed=feed),
        delivery_pb2.MediaClosed(
            room_id=room_id, code=MediaCloseCode.PEER_UNPUBLISHED, feed_id=feed_id, subscription_id=bobs
        ),
    ]
    assert world.pushes(carol) == [delivery_pb2.Unpublished(room_id=room_id, feed=feed)]
    outcome = world.take_outcome()
    assert change_codes(outcome.changes) == [
        ("SubscriptionEnded", MediaCloseCode.PEER_UNPUBLISHED),
        ("FeedUnpublished", code),
    ]
    # The relay closed the feed and its subscriptions already: nothing to order.
    assert outcome.relay_orders == []
    # The feed is gone: another report of it, and the publisher's own unpublish, find nothing.
    world.manager.stream_closed(room_id, feed_id, "", "alice", code)
    assert world.pushes(alice) == [] and codes(world) == []
    with pytest.raises(ParleyError) as gone:
        world.manager.unpublish(alice, feed_id)
    assert gone.value.kind.reason == "FEED_NOT_PUBLISHED"


def test_a_subscription_the_relay_closed_is_told_to_its_subscriber_and_to_the_others(world: World) -> None:
    room_id, feed_id, bobs, (alice, bob, carol) = alices_feed_watched_by_bob(world)
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=feed_id, tag="cam", media_type=1)
    world.take_outcome()

    world.manager.stream_closed(room_id, feed_id, bobs, "bob", MediaCloseCode.LINK_CLOSED)

    assert world.pushes(bob) == [
        delivery_pb2.MediaClosed(
            room_id=room_id, code=MediaCloseCode.LINK_CLOSED, feed_id=feed_id, subscription_id=bobs
        )
    ]
    assert (
        world.pushes(alice)
        == world.pushes(carol)
        == [delivery_pb2.Unsubscribed(room_id=room_id, subscriber="bob", feed=feed)]
    )
    outcome = world.take_outcome()
    assert change_codes(outcome.changes) == [("SubscriptionEnded", MediaCloseCode.LINK_CLOSED)]
    assert outcome.relay_orders == []
    # Bob may subscribe again; a late report of the old subscription does not end the new one.
    world.manager.start_subscribe(bob, feed_id, audio=True, video=True)
    world.manager.complete_subscribe(bob, feed_id, "sub_again", AUDIO_VIDEO)
    world.take_outcome()
    world.manager.stream_closed(room_id, feed_id, bobs, "bob", MediaCloseCode.LINK_CLOSED)
    assert codes(world) == []
    world.manager.unsubscribe(bob, feed_id)
    assert world.take_outcome().changes[0].subscription_id == "sub_again"  # type: ignore[union-attr]


def test_streams_closed_while_negotiated_are_not_recorded(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    slot = world.manager.start_publish(alice, 1, "cam")
    world.manager.stream_closed(room_id, slot.feed_id, "", "alice", MediaCloseCode.LINK_FAILED)
    with pytest.raises(ParleyError) as abandoned:
        world.manager.complete_publish(alice, slot.feed_id, AUDIO_VIDEO)
    assert abandoned.value.kind.reason == "PUBLISH_ABANDONED"

    feed_id = publish(world, alice)
    world.manager.start_subscribe(bob, feed_id, audio=True, video=True)
    world.manager.stream_closed(room_id, feed_id, "sub_early", "bob", MediaCloseCode.LINK_FAILED)
    with pytest.raises(ParleyError) as abandoned:
        world.manager.complete_subscribe(bob, feed_id, "sub_early", AUDIO_VIDEO)
    assert abandoned.value.kind.reason == "SUBSCRIBE_ABANDONED"
    # Bob is not counted as subscribed: he may try again.
    subscribe(world, bob, feed_id)


def test_reports_of_unknown_rooms_and_feeds_are_ignored(world: World) -> None:
    room_id, _, (alice,) = room_with(world, "alice")
    world.manager.stream_closed("no_room", "f1", "", "alice", MediaCloseCode.LINK_CLOSED)
    world.manager.stream_closed(room_id, "f_none", "", "alice", MediaCloseCode.LINK_CLOSED)
    world.manager.stream_closed(room_id, "f_none", "s1", "bob", MediaCloseCode.LINK_CLOSED)
    world.manager.network_weak(room_id, "f_none", "", "alice", bps_send=1, bps_recv=0)
    assert world.pushes(alice) == [] and codes(world) == []


def test_a_weak_network_is_told_to_the_streams_owner_only(world: World) -> None:
    room_id, feed_id, bobs, (alice, bob, carol) = alices_feed_watched_by_bob(world)

    world.manager.network_weak(room_id, feed_id, "", "alice", bps_send=96_000, bps_recv=0)
    world.manager.network_weak(room_id, feed_id, bobs, "bob", bps_send=0, bps_recv=64_000)
    # A subscription that is not (or no longer) bob's is not his to hear of.
    world.manager.network_weak(room_id, feed_id, "sub_old", "bob", bps_send=0, bps_recv=1)

    assert world.pushes(alice) == [
        delivery_pb2.NetworkWeak(room_id=room_id, sid=feed_id, feed_id=feed_id, bps_send=96_000, bps_recv=0)
    ]
    assert world.pushes(bob) == [
        delivery_pb2.NetworkWeak(room_id=room_id, sid=bobs, feed_id=feed_id, bps_send=0, bps_recv=64_000)
    ]
    assert world.pushes(carol) == []
    assert kinds(world.take_outcome().changes) == ["FeedPublished", "SubscriptionStarted"]


def test_mute_local_is_the_publishers_and_told_to_the_others_once_per_change(world: World) -> None:
    room_id, rtoken, (alice, bob) = room_with(world, "alice", "bob")
    feed_id = publish(world, alice)
    world.pushes(bob)

    assert world.manager.mute_local(alice, feed_id, "video", True) == MuteTarget(room_id, RELAY, "")
    assert world.pushes(bob) == [
        delivery_pb2.RemoteMute(
            room_id=room_id, feed_id=feed_id, uid="alice", audio_muted=False, video_muted=True
        )
    ]
    world.manager.mute_local(alice, feed_id, "video", True)
    assert world.pushes(bob) == []
    world.manager.mute_local(alice, feed_id, "audio", True)
    assert world.pushes(bob) == [
        delivery_pb2.RemoteMute(
            room_id=room_id, feed_id=feed_id, uid="alice", audio_muted=True, video_muted=True
        )
    ]
    world.manager.mute_local(alice, feed_id, "video", False)
    assert world.pushes(bob) == [
        delivery_pb2.RemoteMute(
            room_id=room_id, feed_id=feed_id, uid="alice", audio_muted=True, video_muted=False
        )
    ]
    assert world.pushes(alice) == []

    # A joiner learns of mutes in force after the attendance list.
    carol = world.connect("carol")
    world.manager.join_room(carol, room_id, rtoken)
    assert kinds(world.pushes(carol)) == ["AttendanceList", "RemoteMute"]

    refusals = [
        (bob, feed_id, "video", "FEED_NOT_PUBLISHED"),
        (alice, "f_none", "video", "MUTE_FEED_UNKNOWN"),
    ]
    audio_only = world.manager.start_publish(alice, 2, "mic")
    world.manager.complete_publish(
        alice, audio_only.feed_id, (media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus"),)
    )
    refusals.append((alice, audio_only.feed_id, "video", "MUTE_KIND_ABSENT"))
    for session, feed, kind, reason in refusals:
        with pytest.raises(ParleyError) as refused:
            world.manager.mute_local(session, feed, kind, True)
        assert refused.value.kind.reason == reason


def test_mute_remote_is_the_subscribers_alone(world: World) -> None:
    room_id, feed_id, bobs, (alice, bob, carol) = alices_feed_watched_by_bob(world)

    assert world.manager.mute_remote(bob, feed_id, "audio", True) == MuteTarget(room_id, RELAY, bobs)
    assert world.pushes(alice) == world.pushes(carol) == []
    for session, feed, reason in [
        (carol, feed_id, "NOT_SUBSCRIBED"),
        (bob, "f_none", "MUTE_FEED_UNKNOWN"),
    ]:
        with pytest.raises(ParleyError) as refused:
            world.manager.mute_remote(session, feed, "audio", True)
        assert refused.value.kind.reason == reason
    lonely = world.connect("dave")
    with pytest.raises(ParleyError) as outside:
        world.manager.mute_remote(lonely, feed_id, "audio", True)
    assert outside.value.kind.reason == "NOT_IN_ROOM"
