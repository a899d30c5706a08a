"""A room's own rules, without the room manager: who may join, what leaving ends, publishing and
subscribing within the limits, mutes, text, P2P signals, and each refusal with its code. What a rule causes
is recorded by a fake `Effects`: pushes by session id, facts and relay orders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, rooms_pb2

from services.core.errors import ParleyError
from services.rooms.changes import Change
from services.rooms.outcome import RelayOrder, StopFeed, StopSubscription
from services.rooms.p2p import Engine
from services.rooms.pushes import ExitType, LeaveType, MediaCloseCode, Push
from services.rooms.room import MediaSlot, MuteTarget, Room, RoomContext
from tests.clock import FakeClock
from tests.unit.rooms.test_room_manager import RELAY, RULES

AUDIO = media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus")
VIDEO = media_pb2.Track(kind=media_pb2.MEDIA_KIND_VIDEO, codec="video/VP8")


class Recorded:
    """Effects as lists: pushes by session id, facts, relay orders."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.pushes: dict[str, list[Push]] = {}
        self.changes: list[Change] = []
        self.orders: list[RelayOrder] = []

    def push(self, session_id: str, push: Push) -> None:
        self.pushes.setdefault(session_id, []).append(push)

    def push_user(self, biz_name: str, uid: str, push: Push) -> None:
        raise AssertionError("a room pushes to its participants' sessions only")

    def record(self, change: Change) -> None:
        self.changes.append(change)

    def order(self, order: RelayOrder) -> None:
        self.orders.append(order)

    def taken(self, session_id: str) -> list[Push]:
        return self.pushes.pop(session_id, [])

    def facts(self) -> list[str]:
        facts, self.changes = self.changes, []
        return [type(fact).__name__ for fact in facts]


class Place:
    def __init__(self) -> None:
        self.rooms: list[str] = []

    def __call__(self, room_id: str) -> str:
        self.rooms.append(room_id)
        return RELAY


class Setting:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.effects = Recorded()
        self.place = Place()
        self.context = RoomContext(
            RULES,
            self.effects,
            place=self.place,
            relay_live=lambda address: True,
            clock=self.clock,
            now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        )

    def room(self, *uids: str, engine: Engine = Engine.SFU) -> Room:
        """A room with these participants (session `s_<uid>`), what it caused so far cleared."""
        room = Room.open(
            self.context, biz_name="biz", creator_uid="app", record=rooms_pb2.RecordOptions(), engine=engine
        )
        for uid in uids:
            room.join(f"s_{uid}", uid, room.rtoken, None)
        self.effects.clear()
        return room


@pytest.fixture
def setting() -> Setting:
    return Setting()


def refused(rule: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ParleyError) as refusal:
        rule()
    return refusal.value.code, refusal.value.kind.reason


def publish(room: Room, uid: str, *tracks: media_pb2.Track) -> str:
    slot = room.reserve_publish(f"s_{uid}", uid, 1, "cam", data_channel=False)
    room.complete_publish(f"s_{uid}", slot.feed_id, tracks or (AUDIO, VIDEO))
    return slot.feed_id


def subscribe(room: Room, uid: str, feed_id: str) -> str:
    room.reserve_subscribe(f"s_{uid}", uid, feed_id)
    room.complete_subscribe(f"s_{uid}", feed_id, f"sub_{uid}_{feed_id}", (AUDIO, VIDEO))
    return f"sub_{uid}_{feed_id}"


def test_opening_a_room_reports_it_and_it_waits_empty_for_the_grace(setting: Setting) -> None:
    room = Room.open(
        setting.context,
        biz_name="biz",
        creator_uid="app",
        record=rooms_pb2.RecordOptions(),
        engine=Engine.SFU,
    )
    assert setting.effects.facts() == ["RoomCreated"]
    assert not room.lapsed(setting.clock.now + 59.9) and room.lapsed(setting.clock.now + 60)
    room.join("s_alice", "alice", room.rtoken, None)
    assert not room.lapsed(setting.clock.now + 1000)
    setting.clock.now += 5
    room.leave("alice", ExitType.NORMAL)
    assert not room.lapsed(setting.clock.now + 59.9) and room.lapsed(setting.clock.now + 60)
    room.state.held_by_call = True
    assert not room.lapsed(setting.clock.now + 1000)


def test_a_joiner_hears_who_is_there_and_the_others_hear_of_it(setting: Setting) -> None:
    room = setting.room("alice")
    feed_id = publish(room, "alice")
    room.mute_local("alice", feed_id, "video", True)
    setting.effects.clear()
    assert room.join("s_bob", "bob", room.rtoken, None) is None
    assert setting.effects.taken("s_alice") == [delivery_pb2.NewJoinerIn(room_id=room.room_id, uid="bob")]
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=feed_id, tag="cam", media_type=1)
    # The attendance list, then the mutes in force.
    assert setting.effects.taken("s_bob") == [
        delivery_pb2.AttendanceList(
            room_id=room.room_id, participants=[rooms_pb2.Participant(uid="alice", feeds=[feed])]
        ),
        delivery_pb2.RemoteMute(
            room_id=room.room_id, feed_id=feed_id, uid="alice", audio_muted=False, video_muted=True
        ),
    ]
    assert setting.effects.facts() == ["ParticipantJoined"]


def test_join_refusals(setting: Setting) -> None:
    room = setting.room("alice", "bob", "carol")
    assert refused(lambda: room.join("s_dave", "dave", "wrong", None)) == (-403, "RTOKEN_MISMATCH")
    assert refused(lambda: room.join("s_dave", "dave", room.rtoken, None)) == (-403, "ROOM_FULL")
    assert refused(lambda: room.join("s_dave", "dave", room.rtoken, Engine.P2P)) == (-403, "ENGINE_MISMATCH")
    assert refused(lambda: room.join("s_dave", "dave", room.rtoken, Engine.ALIYUN)) == (
        -202,
        "ENGINE_UNSUPPORTED",
    )
    p2p = setting.room("alice", "bob", engine=Engine.P2P)
    # A P2P room holds two, whatever the limit.
    assert refused(lambda: p2p.join("s_carol", "carol", p2p.rtoken, None)) == (-403, "ROOM_FULL")
    assert setting.effects.pushes == {} and setting.effects.changes == []


def test_the_same_uid_from_another_session_takes_its_place(setting: Setting) -> None:
    room = setting.room("alice", "bob", "carol")
    previous = room.join("s_bob2", "bob", room.rtoken, None)
    assert previous is not None and previous.session_id == "s_bob"
    assert setting.effects.taken("s_bob") == [
        delivery_pb2.LeftRoom(room_id=room.room_id, leave_type=LeaveType.REMOVED)
    ]
    assert setting.effects.taken("s_alice") == [
        delivery_pb2.PeerLeft(room_id=room.room_id, uid="bob", exit_type=ExitType.ABNORMAL),
        delivery_pb2.NewJoinerIn(room_id=room.room_id, uid="bob"),
    ]
    assert room.participants["bob"].session_id == "s_bob2"
    assert setting.effects.facts() == ["ParticipantLeft", "ParticipantJoined"]


def test_joining_answers_the_invitations_to_the_room(setting: Setting) -> None:
    room = setting.room("alice")
    room.invitations["bob"] = {"alice": ""}
    room.join("s_bob", "bob", room.rtoken, None)
    assert room.invitations == {}


def test_leaving_ends_what_the_participant_had_and_negotiated(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    alices = publish(room, "alice")
    bobs = publish(room, "bob")
    bobs_subscription = subscribe(room, "bob", alices)
    alices_subscription = subscribe(room, "alice", bobs)
    pending = room.reserve_publish("s_alice", "alice", 2, "", data_channel=False)
    setting.effects.clear()

    left = room.leave("alice", ExitType.NORMAL)
    assert (left.uid, left.session_id) == ("alice", "s_alice")
    assert setting.effects.orders == [
        StopFeed(RELAY, room.room_id, pending.feed_id),
        StopSubscription(RELAY, room.room_id, alices_subscription),
        StopFeed(RELAY, room.room_id, alices),
    ]
    assert setting.effects.taken("s_bob") == [
        delivery_pb2.PeerLeft(room_id=room.room_id, uid="alice", exit_type=ExitType.NORMAL),
        delivery_pb2.MediaClosed(
            room_id=room.room_id,
            code=MediaCloseCode.PEER_LEFT,
            feed_id=alices,
            subscription_id=bobs_subscription,
        ),
    ]
    codes = [(type(c).__name__, getattr(c, "code", None)) for c in setting.effects.changes]
    assert codes == [
        ("SubscriptionEnded", MediaCloseCode.LEFT_ROOM),
        ("SubscriptionEnded", MediaCloseCode.PEER_LEFT),
        ("FeedUnpublished", MediaCloseCode.LEFT_ROOM),
        ("ParticipantLeft", None),
    ]
    assert room.state.negotiations.publishing == {} and list(room.state.feeds) == [bobs]


def test_text_goes_to_the_peers_named_or_to_everyone_else(setting: Setting) -> None:
    room = setting.room("alice", "bob", "carol")
    msg_id = room.send_text("alice", [], "hi")
    told = delivery_pb2.TextReceived(room_id=room.room_id, uid="alice", text="hi", msg_id=msg_id)
    assert setting.effects.taken("s_bob") == setting.effects.taken("s_carol") == [told]
    room.send_text("alice", ["carol", "carol"], "once")
    assert len(setting.effects.taken("s_carol")) == 1 and setting.effects.taken("s_bob") == []
    assert refused(lambda: room.send_text("alice", ["alice"], "x")) == (-10291, "PEER_NOT_IN_ROOM")
    assert refused(lambda: room.send_text("alice", ["zed"], "x")) == (-10291, "PEER_NOT_IN_ROOM")


def test_p2p_signals_go_to_the_other_participant_of_a_p2p_room(setting: Setting) -> None:
    offer = rooms_pb2.P2PSignal(type=rooms_pb2.P2PSignalType.ValueType(1), sdp="v=0\r\n")
    p2p = setting.room("alice", "bob", engine=Engine.P2P)
    p2p.send_p2p_signal("alice", "bob", offer)
    assert setting.effects.taken("s_bob") == [
        delivery_pb2.P2PSignalReceived(room_id=p2p.room_id, sender="alice", signal=offer)
    ]
    assert refused(lambda: p2p.send_p2p_signal("alice", "alice", offer)) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    assert refused(lambda: p2p.send_p2p_signal("alice", "zed", offer)) == (-91041, "P2P_PEER_NOT_IN_ROOM")
    sfu = setting.room("alice", "bob")
    assert refused(lambda: sfu.send_p2p_signal("alice", "bob", offer)) == (-91040, "NOT_P2P_ROOM")


def test_publishing_places_the_room_once_and_is_told_when_complete(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    slot = room.reserve_publish("s_alice", "alice", 1, "cam", data_channel=False)
    assert slot == MediaSlot(room.room_id, "biz", "alice", RELAY, slot.feed_id)
    assert setting.effects.pushes == {} and room.state.feeds == {}
    room.complete_publish("s_alice", slot.feed_id, (AUDIO,))
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=slot.feed_id, tag="cam", media_type=1)
    assert setting.effects.taken("s_bob") == [delivery_pb2.NewPublish(room_id=room.room_id, feed=feed)]
    [published] = setting.effects.changes
    assert [(t.kind, t.codec) for t in published.tracks] == [(media_pb2.MEDIA_KIND_AUDIO, "audio/opus")]  # type: ignore[union-attr]
    room.reserve_subscribe("s_bob", "bob", slot.feed_id)
    assert setting.place.rooms == [room.room_id]


def test_publish_refusals(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    publish(room, "alice")
    pending = room.reserve_publish("s_alice", "alice", 2, "", data_channel=False)
    # A reservation counts against the limit.
    reserve = lambda: room.reserve_publish("s_alice", "alice", 2, "", data_channel=False)  # noqa: E731
    assert refused(reserve) == (-1073, "PUBLISH_LIMIT")
    assert refused(lambda: room.complete_publish("s_bob", pending.feed_id, (AUDIO,))) == (
        -1071,
        "PUBLISH_ABANDONED",
    )
    room.cancel_publish("s_alice", pending.feed_id)
    assert refused(lambda: room.complete_publish("s_alice", pending.feed_id, (AUDIO,))) == (
        -1071,
        "PUBLISH_ABANDONED",
    )
    data_channel = lambda: room.reserve_publish("s_bob", "bob", 1, "", data_channel=True)  # noqa: E731
    assert refused(data_channel) == (-203, "DATA_CHANNEL_NOT_P2P")
    p2p = setting.room("alice", engine=Engine.P2P)
    assert refused(lambda: p2p.reserve_publish("s_alice", "alice", 1, "", data_channel=False)) == (
        5104,
        "PUBLISH_IN_P2P_ROOM",
    )


def test_unpublishing_is_the_publishers_and_closes_the_subscriptions(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    feed_id = publish(room, "alice")
    subscription_id = subscribe(room, "bob", feed_id)
    setting.effects.clear()
    assert refused(lambda: room.unpublish("bob", feed_id)) == (-91012, "FEED_NOT_PUBLISHED")
    room.unpublish("alice", feed_id)
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=feed_id, tag="cam", media_type=1)
    assert setting.effects.taken("s_bob") == [
        delivery_pb2.Unpublished(room_id=room.room_id, feed=feed),
        delivery_pb2.MediaClosed(
            room_id=room.room_id,
            code=MediaCloseCode.PEER_UNPUBLISHED,
            feed_id=feed_id,
            subscription_id=subscription_id,
        ),
    ]
    assert setting.effects.orders == [StopFeed(RELAY, room.room_id, feed_id)]
    assert setting.effects.facts() == ["SubscriptionEnded", "FeedUnpublished"]


def test_subscribe_refusals(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    feeds = [publish(room, "alice"), publish(room, "alice")]
    assert refused(lambda: room.reserve_subscribe("s_bob", "bob", "f_none")) == (-1081, "FEED_UNKNOWN")
    subscribe(room, "bob", feeds[0])
    assert refused(lambda: room.reserve_subscribe("s_bob", "bob", feeds[0])) == (-1081, "SUBSCRIPTION_EXISTS")
    room.reserve_subscribe("s_bob", "bob", feeds[1])
    assert refused(lambda: room.reserve_subscribe("s_bob", "bob", feeds[1])) == (-1081, "SUBSCRIPTION_EXISTS")
    carol_room = setting.room("alice", "bob", "carol")
    carol_feeds = [publish(carol_room, "alice"), publish(carol_room, "alice"), publish(carol_room, "bob")]
    subscribe(carol_room, "carol", carol_feeds[0])
    carol_room.reserve_subscribe("s_carol", "carol", carol_feeds[1])
    assert refused(lambda: carol_room.reserve_subscribe("s_carol", "carol", carol_feeds[2])) == (
        -1083,
        "SUBSCRIBE_LIMIT",
    )
    assert refused(lambda: room.complete_subscribe("s_bob", "f_none", "sub_x", (AUDIO,))) == (
        -1081,
        "SUBSCRIBE_ABANDONED",
    )
    assert refused(lambda: room.unsubscribe("alice", feeds[0])) == (-91013, "NOT_SUBSCRIBED")
    p2p = setting.room("alice", engine=Engine.P2P)
    assert refused(lambda: p2p.reserve_subscribe("s_alice", "alice", "f")) == (-1087, "SUBSCRIBE_IN_P2P_ROOM")


def test_negotiations_past_their_deadline_are_dropped(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    feed_id = publish(room, "alice")
    pending = room.reserve_publish("s_alice", "alice", 2, "", data_channel=False)
    room.reserve_subscribe("s_bob", "bob", feed_id)
    room.expire_negotiations(setting.clock.now + 29.9)
    assert setting.effects.orders == []
    room.expire_negotiations(setting.clock.now + 30)
    assert setting.effects.orders == [StopFeed(RELAY, room.room_id, pending.feed_id)]
    assert refused(lambda: room.complete_subscribe("s_bob", feed_id, "sub_late", (AUDIO,))) == (
        -1081,
        "SUBSCRIBE_ABANDONED",
    )


def test_streams_the_relay_closed_while_negotiated_do_not_complete(setting: Setting) -> None:
    room = setting.room("alice", "bob")
    slot = room.reserve_publish("s_alice", "alice", 1, "cam", data_channel=False)
    room.stream_closed(slot.feed_id, "", "alice", MediaCloseCode.LINK_FAILED)
    assert refused(lambda: room.complete_publish("s_alice", slot.feed_id, (AUDIO,))) == (
        -1071,
        "PUBLISH_ABANDONED",
    )
    feed_id = publish(room, "alice")
    room.reserve_subscribe("s_bob", "bob", feed_id)
    room.stream_closed(feed_id, "sub_early", "bob", MediaCloseCode.LINK_FAILED)
    assert refused(lambda: room.complete_subscribe("s_bob", feed_id, "sub_early", (AUDIO,))) == (
        -1081,
        "SUBSCRIBE_ABANDONED",
    )
    subscribe(room, "bob", feed_id)


def test_mutes(setting: Setting) -> None:
    room = setting.room("alice", "bob", "carol")
    feed_id = publish(room, "alice")
    audio_only = publish(room, "alice", AUDIO)
    subscription_id = subscribe(room, "bob", feed_id)
    setting.effects.clear()

    assert room.mute_local("alice", feed_id, "audio", True) == MuteTarget(room.room_id, RELAY, "")
    muted = delivery_pb2.RemoteMute(room_id=room.room_id, feed_id=feed_id, uid="alice", audio_muted=True)
    assert setting.effects.taken("s_bob") == setting.effects.taken("s_carol") == [muted]
    room.mute_local("alice", feed_id, "audio", True)
    assert setting.effects.pushes == {}
    assert room.mute_remote("bob", feed_id, "video", True) == MuteTarget(room.room_id, RELAY, subscription_id)
    assert setting.effects.pushes == {}

    assert refused(lambda: room.mute_local("alice", "f_none", "audio", True)) == (-91014, "MUTE_FEED_UNKNOWN")
    assert refused(lambda: room.mute_local("bob", feed_id, "audio", True)) == (-91012, "FEED_NOT_PUBLISHED")
    assert refused(lambda: room.mute_local("alice", audio_only, "video", True)) == (
        -91015,
        "MUTE_KIND_ABSENT",
    )
    assert refused(lambda: room.mute_remote("carol", feed_id, "audio", True)) == (-91013, "NOT_SUBSCRIBED")
    assert refused(lambda: room.mute_remote("bob", "f_none", "audio", True)) == (-91014, "MUTE_FEED_UNKNOWN")
