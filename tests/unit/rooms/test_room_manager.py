"""The room manager's rules on a fake clock: rooms, participants, text, invitations, feeds and
subscriptions, and what each operation pushes, reports and orders of the relay."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, events_pb2, rooms_pb2

from services.core.errors import ParleyError
from services.rooms import pushes
from services.rooms.calls import Call
from services.rooms.manager import RoomManager, RoomRules
from services.rooms.outcome import Outcome, StopFeed, StopSubscription
from services.rooms.placement import RelayLoad
from services.rooms.pushes import ExitType, InviteReply, MediaCloseCode
from services.rooms.sessions import Attachment
from services.rooms.state import RoomState
from services.rooms.store import InProcessRoomStore, RoomStore
from tests.clock import FakeClock

RELAY = "relay:1"
RULES = RoomRules(
    session_grace_s=15,
    empty_room_grace_s=60,
    max_participants=3,
    max_feeds_per_participant=2,
    max_subscriptions_per_participant=2,
    negotiation_timeout_s=30,
    # Gateways do not heartbeat here; tests/unit/rooms/test_sessions.py covers leases.
    gateway_lease_s=10_000,
)
AUDIO_VIDEO = (
    media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus"),
    media_pb2.Track(kind=media_pb2.MEDIA_KIND_VIDEO, codec="video/VP8"),
)


class CopyingRoomStore(InProcessRoomStore):
    """Hands out and keeps copies of the records, as a replicated store would: the room manager must
    save what it changes and rely on no record staying the same object."""

    def load(self, room_id: str) -> RoomState | None:
        return copy.deepcopy(super().load(room_id))

    def save(self, state: RoomState) -> None:
        super().save(copy.deepcopy(state))

    def load_call(self, call_id: str) -> Call | None:
        return copy.deepcopy(super().load_call(call_id))

    def save_call(self, call: Call) -> None:
        super().save_call(copy.deepcopy(call))


class World:
    """A room manager, its clock, and the pushes it has queued, per session."""

    def __init__(self, store: RoomStore | None = None) -> None:
        self.clock = FakeClock()
        self.manager = RoomManager(
            RULES,
            relay_address=RELAY,
            clock=self.clock,
            now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
            store=store,
        )
        self._queued: dict[str, list[pushes.Push]] = {}
        # Sessions' own facts, which `take_outcome` sets aside (test_sessions_are_reported_once_each).
        self.session_facts: list[events_pb2.SessionOpened | events_pb2.SessionClosed] = []

    def connect(self, uid: str, *, biz_name: str = "biz", gateway: str = "gw1") -> str:
        session_id = f"s_{uid}_{len(self.manager.sessions)}"
        attachment = Attachment(gateway, f"{gateway}:1", f"c_{session_id}")
        self.manager.open_session(session_id, biz_name, uid, attachment)
        return session_id

    def pushes(self, session_id: str) -> list[pushes.Push]:
        """What was queued for a session since the last call (on any gateway), in order."""
        for gateway in ("gw1", "gw2"):
            for item in self.manager.sessions.take(gateway, limit=10_000):
                self._queued.setdefault(item.session_id, []).append(item.push)
        return self._queued.pop(session_id, [])

    def take_outcome(self) -> Outcome:
        """What the manager caused, but the session facts: those go to `session_facts`."""
        outcome = self.manager.outcome()
        session_facts = (events_pb2.SessionOpened, events_pb2.SessionClosed)
        self.session_facts += [change for change in outcome.changes if isinstance(change, session_facts)]
        outcome.changes = [change for change in outcome.changes if not isinstance(change, session_facts)]
        return outcome


def kinds(items: list[object]) -> list[str]:
    return [type(item).__name__ for item in items]


def room_with(world: World, *uids: str) -> tuple[str, str, list[str]]:
    """A room created by the first uid and joined by the others; pushes and outcome so far are taken."""
    sessions = [world.connect(uid) for uid in uids]
    room = world.manager.create_room(
        biz_name="", creator_uid="", session_id=sessions[0], record=rooms_pb2.RecordOptions()
    )
    for session in sessions[1:]:
        world.manager.join_room(session, room.room_id, room.rtoken)
    for session in sessions:
        world.pushes(session)
    world.take_outcome()
    return room.room_id, room.rtoken, sessions


def test_a_joiner_gets_the_attendance_and_the_others_hear_of_it(world: World) -> None:
    alice = world.connect("alice")
    room = world.manager.create_room(
        biz_name="", creator_uid="", session_id=alice, record=rooms_pb2.RecordOptions()
    )
    assert (room.biz_name, room.creator_uid) == ("biz", "alice")
    assert kinds(world.take_outcome().changes) == ["RoomCreated", "ParticipantJoined"]
    bob = world.connect("bob")
    world.manager.join_room(bob, room.room_id, room.rtoken)

    assert world.pushes(alice) == [delivery_pb2.NewJoinerIn(room_id=room.room_id, uid="bob")]
    assert world.pushes(bob) == [
        delivery_pb2.AttendanceList(
            room_id=room.room_id, participants=(rooms_pb2.Participant(uid="alice", feeds=()),)
        )
    ]
    joined = world.take_outcome().changes
    assert joined == [
        events_pb2.ParticipantJoined(
            room_id=room.room_id, biz_name="biz", uid="bob", session_id=bob, joined_at=joined[0].joined_at
        )
    ]  # type: ignore[union-attr]


def test_join_refusals(world: World) -> None:
    room_id, rtoken, (_, bob, _) = room_with(world, "alice", "bob", "carol")
    cases = [
        (world.connect("dave"), room_id, "wrong", "RTOKEN_MISMATCH"),
        (world.connect("erin"), "missing", rtoken, "ROOM_NOT_FOUND"),
        (world.connect("frank", biz_name="other_app"), room_id, rtoken, "ROOM_NOT_FOUND"),
        (world.connect("gina"), room_id, rtoken, "ROOM_FULL"),
        (bob, room_id, rtoken, "ALREADY_IN_ROOM"),
    ]
    for session, joined_room, token, reason in cases:
        with pytest.raises(ParleyError) as refused:
            world.manager.join_room(session, joined_room, token)
        assert refused.value.kind.reason == reason
    with pytest.raises(ParleyError) as unknown:
        world.manager.join_room("no_session", room_id, rtoken)
    assert unknown.value.kind.reason == "SESSION_UNKNOWN"


def test_the_same_uid_joining_from_another_session_replaces_the_first(world: World) -> None:
    room_id, rtoken, (alice, bob) = room_with(world, "alice", "bob")
    bob_again = world.connect("bob")
    world.manager.join_room(bob_again, room_id, rtoken)

    assert world.pushes(bob) == [delivery_pb2.LeftRoom(room_id=room_id, leave_type=pushes.LeaveType.REMOVED)]
    assert world.pushes(alice) == [
        delivery_pb2.PeerLeft(room_id=room_id, uid="bob", exit_type=ExitType.ABNORMAL),
        delivery_pb2.NewJoinerIn(room_id=room_id, uid="bob"),
    ]
    assert kinds(world.pushes(bob_again)) == ["AttendanceList"]
    # The replaced session is in no room.
    with pytest.raises(ParleyError):
        world.manager.leave_room(bob)


def test_an_operator_kicks_a_participant_and_closes_a_room(world: World) -> None:
    room_id, rtoken, (alice, bob, carol) = room_with(world, "alice", "bob", "carol")
    world.manager.remove_participant(room_id, "bob")

    assert world.pushes(bob) == [delivery_pb2.LeftRoom(room_id=room_id, leave_type=pushes.LeaveType.REMOVED)]
    assert world.pushes(alice) == [
        delivery_pb2.PeerLeft(room_id=room_id, uid="bob", exit_type=ExitType.ABNORMAL)
    ]
    assert kinds(world.take_outcome().changes) == ["ParticipantLeft"]
    assert sorted(world.manager.get_room(room_id).participants) == ["alice", "carol"]
    # The kicked session is in no room, and may join again.
    world.manager.join_room(bob, room_id, rtoken)
    with pytest.raises(ParleyError) as absent:
        world.manager.remove_participant(room_id, "dave")
    assert absent.value.kind.reason == "NOT_FOUND"
    world.pushes(alice)
    world.take_outcome()

    world.manager.close_room(room_id)
    for session in (alice, bob, carol):
        assert world.pushes(session)[-1] == delivery_pb2.LeftRoom(
            room_id=room_id, leave_type=pushes.LeaveType.REMOVED
        )
    assert kinds(world.take_outcome().changes) == ["ParticipantLeft"] * 3 + ["RoomDestroyed"]
    with pytest.raises(ParleyError):
        world.manager.get_room(room_id)
    with pytest.raises(ParleyError) as gone:
        world.manager.close_room(room_id)
    assert gone.value.kind.reason == "NOT_FOUND"
    with pytest.raises(ParleyError):
        world.manager.leave_room(alice)


def test_rooms_are_listed_by_app(world: World) -> None:
    first, _, _ = room_with(world, "alice")
    second = world.manager.create_room(
        biz_name="biz", creator_uid="backend", session_id="", record=rooms_pb2.RecordOptions()
    )
    other = world.manager.create_room(
        biz_name="other", creator_uid="backend", session_id="", record=rooms_pb2.RecordOptions()
    )
    assert [room.room_id for room in world.manager.list_rooms("biz")] == [first, second.room_id]
    assert [room.room_id for room in world.manager.list_rooms("other")] == [other.room_id]
    assert len(world.manager.list_rooms("")) == 3


def test_an_empty_room_is_destroyed_after_its_grace_unless_someone_joins(world: World) -> None:
    room_id, rtoken, (alice,) = room_with(world, "alice")
    world.manager.leave_room(alice)
    world.clock.now += 59
    world.manager.sweep()
    world.manager.join_room(alice, room_id, rtoken)
    world.manager.leave_room(alice)
    world.take_outcome()
    world.clock.now += 59.9
    world.manager.sweep()
    assert world.take_outcome().changes == []
    world.clock.now += 0.1
    world.manager.sweep()
    assert kinds(world.take_outcome().changes) == ["RoomDestroyed"]
    with pytest.raises(ParleyError):
        world.manager.get_room(room_id)


def test_a_room_an_app_created_waits_for_its_first_participant_as_long(world: World) -> None:
    room = world.manager.create_room(
        biz_name="biz", creator_uid="backend", session_id="", record=rooms_pb2.RecordOptions()
    )
    assert room.participants == {}
    world.clock.now += 60
    world.manager.sweep()
    assert kinds(world.take_outcome().changes) == ["RoomCreated", "RoomDestroyed"]
    with pytest.raises(ParleyError) as missing:
        world.manager.create_room(
            biz_name="", creator_uid="x", session_id="", record=rooms_pb2.RecordOptions()
        )
    assert missing.value.kind.reason == "INVALID_ARGUMENT"


def test_text_goes_to_the_peers_named_or_to_everyone_else(world: World) -> None:
    room_id, _, (alice, bob, carol) = room_with(world, "alice", "bob", "carol")
    msg_id = world.manager.send_text(alice, [], "all")
    assert world.pushes(bob) == [
        delivery_pb2.TextReceived(room_id=room_id, uid="alice", text="all", msg_id=msg_id)
    ]
    assert world.pushes(carol) == [
        delivery_pb2.TextReceived(room_id=room_id, uid="alice", text="all", msg_id=msg_id)
    ]
    assert world.pushes(alice) == []
    world.manager.send_text(alice, ["carol"], "only you")
    assert world.pushes(bob) == [] and kinds(world.pushes(carol)) == ["TextReceived"]
    for peers in (["alice"], ["zed"]):
        with pytest.raises(ParleyError) as refused:
            world.manager.send_text(alice, peers, "x")
        assert (refused.value.code, refused.value.kind.reason) == (-10291, "PEER_NOT_IN_ROOM")


def test_invitations_online_offline_replied_and_abandoned(world: World) -> None:
    room_id, rtoken, (alice,) = room_with(world, "alice")
    bob = world.connect("bob")
    bob_phone = world.connect("bob", gateway="gw2")
    world.manager.invite(alice, ["bob", "nobody"], "x")
    assert world.pushes(alice) == [
        delivery_pb2.InviteReplied(room_id=room_id, invitee="nobody", reply=InviteReply.OFFLINE)
    ]
    # Every session of the invitee hears it, wherever it is connected.
    assert (
        world.pushes(bob)
        == world.pushes(bob_phone)
        == [delivery_pb2.InviteRequested(room_id=room_id, rtoken=rtoken, inviter="alice", extra="x")]
    )

    world.manager.reply_invite(bob_phone, room_id, InviteReply.REJECT, "")
    assert world.pushes(alice) == [
        delivery_pb2.InviteReplied(room_id=room_id, invitee="bob", reply=InviteReply.REJECT)
    ]
    with pytest.raises(ParleyError) as answered:
        world.manager.reply_invite(bob, room_id, InviteReply.ANSWER, "")
    assert (answered.value.code, answered.value.kind.reason) == (-601, "INVITATION_NOT_FOUND")

    # An invitee whose last session ends is offline; one who joins has answered.
    world.manager.invite(alice, ["bob"], "")
    world.manager.close_session(bob, f"c_{bob}")
    assert world.pushes(alice) == []
    world.manager.close_session(bob_phone, f"c_{bob_phone}")
    assert world.pushes(alice) == [
        delivery_pb2.InviteReplied(room_id=room_id, invitee="bob", reply=InviteReply.OFFLINE)
    ]
    carol = world.connect("carol")
    world.manager.invite(alice, ["carol"], "")
    world.manager.join_room(carol, room_id, rtoken)
    world.manager.close_session(carol, f"c_{carol}")
    assert InviteReply.OFFLINE not in [
        p.reply for p in world.pushes(alice) if isinstance(p, delivery_pb2.InviteReplied)
    ]

    with pytest.raises(ParleyError) as self_invite:
        world.manager.invite(alice, ["alice"], "")
    assert self_invite.value.code == -503
    with pytest.raises(ParleyError) as outside:
        world.manager.invite(world.connect("dan"), ["alice"], "")
    assert outside.value.code == -501


def test_a_dropped_session_keeps_its_place_for_the_grace_and_gets_what_it_missed(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    world.manager.send_text(alice, [], "queued before the drop")
    world.manager.detach_session(bob, f"c_{bob}")
    world.manager.send_text(alice, [], "sent while away")
    world.clock.now += 14.9
    world.manager.sweep()
    assert world.pushes(alice) == []

    room = world.manager.resume_session(bob, "biz", "bob", Attachment("gw2", "gw2:1", "c_new"))
    assert room == room_id
    world.manager.send_text(alice, [], "after")
    assert [p.text for p in world.pushes(bob)] == ["queued before the drop", "sent while away", "after"]  # type: ignore[union-attr]
    # Only the session's own user may take it back.
    with pytest.raises(ParleyError) as refused:
        world.manager.resume_session(bob, "biz", "mallory", Attachment("gw2", "gw2:1", "c_x"))
    assert refused.value.kind.reason == "SESSION_UNKNOWN"


def test_a_session_that_does_not_come_back_leaves_with_exit_type_2(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    world.manager.detach_session(bob, f"c_{bob}")
    world.clock.now += 15
    world.manager.sweep()
    assert world.pushes(alice) == [
        delivery_pb2.PeerLeft(room_id=room_id, uid="bob", exit_type=ExitType.ABNORMAL)
    ]
    left = world.take_outcome().changes
    assert kinds(left) == ["ParticipantLeft"] and left[0].exit_type == ExitType.ABNORMAL  # type: ignore[union-attr]
    with pytest.raises(ParleyError):
        world.manager.resume_session(bob, "biz", "bob", Attachment("gw1", "gw1:1", "c_late"))


def test_disconnect_leaves_normally_and_an_old_connection_cannot_end_a_resumed_session(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    world.manager.resume_session(bob, "biz", "bob", Attachment("gw2", "gw2:1", "c_new"))
    world.manager.detach_session(bob, f"c_{bob}")
    world.manager.close_session(bob, f"c_{bob}")
    world.clock.now += 100
    world.manager.sweep()
    assert world.pushes(alice) == []
    world.manager.close_session(bob, "c_new")
    assert world.pushes(alice) == [
        delivery_pb2.PeerLeft(room_id=room_id, uid="bob", exit_type=ExitType.NORMAL)
    ]


def publish(world: World, session: str, media_type: int = 1) -> str:
    slot = world.manager.start_publish(session, media_type, "cam")
    assert slot.relay_address == RELAY
    world.manager.complete_publish(session, slot.feed_id, AUDIO_VIDEO)
    return slot.feed_id


def subscribe(world: World, session: str, feed_id: str) -> str:
    world.manager.start_subscribe(session, feed_id, audio=True, video=True)
    subscription_id = f"sub_{session}_{feed_id}"
    world.manager.complete_subscribe(session, feed_id, subscription_id, AUDIO_VIDEO)
    return subscription_id


def test_publishing_and_subscribing_are_told_and_reported(world: World) -> None:
    room_id, _, (alice, bob, carol) = room_with(world, "alice", "bob", "carol")
    feed_id = publish(world, alice)
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=feed_id, tag="cam", media_type=1)
    assert world.pushes(bob) == world.pushes(carol) == [delivery_pb2.NewPublish(room_id=room_id, feed=feed)]
    subscription_id = subscribe(world, bob, feed_id)
    assert (
        world.pushes(alice)
        == world.pushes(carol)
        == [delivery_pb2.NewSubscribe(room_id=room_id, subscriber="bob", feed=feed)]
    )
    world.manager.unsubscribe(bob, feed_id)
    assert world.pushes(alice) == [delivery_pb2.Unsubscribed(room_id=room_id, subscriber="bob", feed=feed)]
    outcome = world.take_outcome()
    assert kinds(outcome.changes) == ["FeedPublished", "SubscriptionStarted", "SubscriptionEnded"]
    assert outcome.changes[2].code == MediaCloseCode.STOPPED  # type: ignore[union-attr]
    assert outcome.relay_orders == [StopSubscription(RELAY, room_id, subscription_id)]

    second = subscribe(world, bob, feed_id)
    world.pushes(alice)
    world.manager.unpublish(alice, feed_id)
    assert world.pushes(bob) == [
        delivery_pb2.Unpublished(room_id=room_id, feed=feed),
        delivery_pb2.MediaClosed(
            room_id=room_id, code=MediaCloseCode.PEER_UNPUBLISHED, feed_id=feed_id, subscription_id=second
        ),
    ]
    outcome = world.take_outcome()
    assert [(type(c).__name__, getattr(c, "code", None)) for c in outcome.changes] == [
        ("SubscriptionStarted", None),
        ("SubscriptionEnded", MediaCloseCode.PEER_UNPUBLISHED),
        ("FeedUnpublished", MediaCloseCode.STOPPED),
    ]
    assert outcome.relay_orders == [StopFeed(RELAY, room_id, feed_id)]


def test_a_publisher_leaving_closes_its_subscribers_with_5002(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    feed_id = publish(world, alice)
    bobs_feed = publish(world, bob)
    subscription_id = subscribe(world, bob, feed_id)
    alices_subscription = subscribe(world, alice, bobs_feed)
    world.pushes(bob)
    world.take_outcome()

    world.manager.leave_room(alice)
    assert world.pushes(bob) == [
        delivery_pb2.PeerLeft(room_id=room_id, uid="alice", exit_type=ExitType.NORMAL),
        delivery_pb2.MediaClosed(
            room_id=room_id, code=MediaCloseCode.PEER_LEFT, feed_id=feed_id, subscription_id=subscription_id
        ),
    ]
    outcome = world.take_outcome()
    assert [(type(c).__name__, getattr(c, "code", None)) for c in outcome.changes] == [
        ("SubscriptionEnded", MediaCloseCode.LEFT_ROOM),
        ("SubscriptionEnded", MediaCloseCode.PEER_LEFT),
        ("FeedUnpublished", MediaCloseCode.LEFT_ROOM),
        ("ParticipantLeft", None),
    ]
    assert outcome.relay_orders == [
        StopSubscription(RELAY, room_id, alices_subscription),
        StopFeed(RELAY, room_id, feed_id),
    ]


def test_limits_and_negotiations_that_never_complete(world: World) -> None:
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    publish(world, alice)
    pending = world.manager.start_publish(alice, 2, "")
    with pytest.raises(ParleyError) as limit:
        world.manager.start_publish(alice, 2, "")
    assert (limit.value.code, limit.value.kind.reason) == (-1073, "PUBLISH_LIMIT")
    world.take_outcome()
    world.clock.now += 30
    world.manager.sweep()
    # The gateway never completed it: the relay is told to stop the feed, in case it has it.
    assert world.take_outcome().relay_orders == [StopFeed(RELAY, room_id, pending.feed_id)]
    with pytest.raises(ParleyError) as late:
        world.manager.complete_publish(alice, pending.feed_id, AUDIO_VIDEO)
    assert (late.value.code, late.value.kind.reason) == (-1071, "PUBLISH_ABANDONED")

    feeds = [publish(world, bob), publish(world, bob)]
    subscribe(world, alice, feeds[0])
    world.manager.start_subscribe(alice, feeds[1], audio=True, video=False)
    with pytest.raises(ParleyError) as twice:
        world.manager.start_subscribe(alice, feeds[1], audio=True, video=False)
    assert twice.value.kind.reason == "SUBSCRIPTION_EXISTS"
    world.manager.cancel_subscribe(alice, feeds[1])
    with pytest.raises(ParleyError) as nothing:
        world.manager.start_subscribe(alice, feeds[1], audio=False, video=False)
    assert nothing.value.code == -1086
    # The feed ends while a subscription to it is being negotiated: completing it fails.
    world.manager.start_subscribe(alice, feeds[1], audio=True, video=True)
    world.manager.unpublish(bob, feeds[1])
    with pytest.raises(ParleyError) as gone:
        world.manager.complete_subscribe(alice, feeds[1], "sub_x", AUDIO_VIDEO)
    assert (gone.value.code, gone.value.kind.reason) == (-1081, "SUBSCRIBE_ABANDONED")


def test_commands_outside_a_room_have_the_seeds_codes(world: World) -> None:
    alone = world.connect("alone")
    for operation, code in (
        (lambda: world.manager.start_publish(alone, 1, ""), 5104),
        (lambda: world.manager.start_subscribe(alone, "f", audio=True, video=True), -1087),
        (lambda: world.manager.send_text(alone, [], "x"), -10291),
        (lambda: world.manager.invite(alone, ["x"], ""), -501),
        (lambda: world.manager.leave_room(alone), -91010),
        (lambda: world.manager.unpublish(alone, "f"), -91010),
    ):
        with pytest.raises(ParleyError) as refused:
            operation()
        assert refused.value.code == code


def test_sessions_are_reported_once_each(world: World) -> None:
    alice = world.connect("alice")
    attachment = Attachment("gw1", "gw1:1", f"c_{alice}")
    world.manager.open_session(alice, "biz", "alice", attachment)  # the gateway retried: the same session
    world.manager.detach_session(alice, attachment.connection_id)
    world.manager.resume_session(alice, "biz", "alice", Attachment("gw2", "gw2:1", "c_again"))
    world.clock.advance(30)
    world.manager.close_session(alice, "c_again")
    world.take_outcome()
    opened, closed = world.session_facts
    assert isinstance(opened, events_pb2.SessionOpened) and isinstance(closed, events_pb2.SessionClosed)
    assert (opened.session_id, opened.biz_name, opened.uid, opened.gateway) == (
        alice,
        "biz",
        "alice",
        "gw1:1",
    )
    # A resumed session is one session, from its opening to its end.
    assert (closed.session_id, closed.uid, closed.gateway, closed.opened_at) == (
        alice,
        "alice",
        "gw2:1",
        opened.opened_at,
    )


def test_an_app_in_arrears_can_neither_create_nor_join_a_room_until_it_is_out(world: World) -> None:
    room_id, rtoken, _ = room_with(world, "alice")
    world.manager.set_account_status("biz", in_arrears=True)
    bob = world.connect("bob")
    for refused_call in (
        lambda: world.manager.create_room(
            biz_name="", creator_uid="", session_id=bob, record=rooms_pb2.RecordOptions()
        ),
        lambda: world.manager.create_room(
            biz_name="biz", creator_uid="backend", session_id="", record=rooms_pb2.RecordOptions()
        ),
        lambda: world.manager.join_room(bob, room_id, rtoken),
    ):
        with pytest.raises(ParleyError) as refused:
            refused_call()
        assert (refused.value.code, refused.value.kind.reason) == (-15, "ACCOUNT_IN_ARREARS")
    # Another app is not affected; the app is served again once billing says so.
    world.manager.create_room(
        biz_name="other", creator_uid="x", session_id="", record=rooms_pb2.RecordOptions()
    )
    world.manager.set_account_status("biz", in_arrears=False)
    world.manager.join_room(bob, room_id, rtoken)


def test_a_room_whose_relay_died_moves_to_a_live_one_on_its_next_publish(world: World) -> None:
    """docs/protocol.md, "A relay that dies": the streams there end (the publisher told 5009, its
    subscribers 5006 and on_unpublish), and the publish that found it out goes to a live relay."""
    manager = world.manager
    manager.register_relay("a", "relay:a", 10, RelayLoad())
    manager.register_relay("b", "relay:b", 10, RelayLoad())
    room_id, _, (alice, bob, carol) = room_with(world, "alice", "bob", "carol")
    slot = manager.start_publish(alice, 1, "cam")
    assert slot.relay_address == "relay:a"
    manager.complete_publish(alice, slot.feed_id, AUDIO_VIDEO)
    subscription_id = subscribe(world, bob, slot.feed_id)
    for session in (alice, bob, carol):
        world.pushes(session)
    world.take_outcome()

    # Relay a stops reporting; b goes on. Until a's lease runs out the room stays there.
    world.clock.advance(RULES.relay_lease_s - 1)
    manager.report_relay_load("b", RelayLoad())
    assert manager.start_publish(carol, 1, "mic").relay_address == "relay:a"
    manager.cancel_publish(carol, manager.start_publish(carol, 2, "cam2").feed_id)
    world.take_outcome()
    world.clock.advance(2)

    moved = manager.start_publish(carol, 1, "cam3")
    assert moved.relay_address == "relay:b"
    feed = rooms_pb2.FeedRef(uid="alice", feed_id=slot.feed_id, tag="cam", media_type=1)
    assert world.pushes(alice) == [
        delivery_pb2.MediaClosed(room_id=room_id, code=5009, feed_id=slot.feed_id, subscription_id="")
    ]
    assert world.pushes(bob) == [
        delivery_pb2.Unpublished(room_id=room_id, feed=feed),
        delivery_pb2.MediaClosed(
            room_id=room_id, code=5006, feed_id=slot.feed_id, subscription_id=subscription_id
        ),
    ]
    outcome = world.take_outcome()
    assert [(type(c).__name__, c.code) for c in outcome.changes] == [  # type: ignore[union-attr]
        ("SubscriptionEnded", 5006),
        ("FeedUnpublished", 5009),
    ]
    # Nothing is ordered of the dead relay.
    assert [order for order in outcome.relay_orders if order.relay_address == "relay:a"] == []
    assert manager.get_room(room_id).relay_address == "relay:b"
    # The publisher republishes on the new relay.
    assert manager.start_publish(alice, 1, "cam").relay_address == "relay:b"


def test_the_sweep_tells_the_clients_of_a_dead_relay_without_waiting_for_a_publish(world: World) -> None:
    """A room whose members only receive would otherwise never hear that its relay died: nobody of it
    publishes or subscribes again until told."""
    manager = world.manager
    manager.register_relay("a", "relay:a", 10, RelayLoad())
    manager.register_relay("b", "relay:b", 10, RelayLoad())
    room_id, _, (alice, bob) = room_with(world, "alice", "bob")
    slot = manager.start_publish(alice, 1, "cam")
    manager.complete_publish(alice, slot.feed_id, AUDIO_VIDEO)
    subscription_id = subscribe(world, bob, slot.feed_id)
    for session in (alice, bob):
        world.pushes(session)
    world.take_outcome()

    world.clock.advance(RULES.relay_lease_s - 1)
    manager.report_relay_load("b", RelayLoad())
    manager.sweep()
    assert world.pushes(alice) == world.pushes(bob) == []
    world.clock.advance(2)
    manager.sweep()

    assert world.pushes(alice) == [
        delivery_pb2.MediaClosed(room_id=room_id, code=5009, feed_id=slot.feed_id, subscription_id="")
    ]
    assert world.pushes(bob)[-1] == delivery_pb2.MediaClosed(
        room_id=room_id, code=5006, feed_id=slot.feed_id, subscription_id=subscription_id
    )
    assert manager.get_room(room_id).relay_address == ""
    assert manager.start_publish(alice, 1, "cam").relay_address == "relay:b"
