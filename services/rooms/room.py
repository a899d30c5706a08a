"""A live room and its rules, as LiveKit's `rtc.Room` keeps its own: who may join (token, engine, size),
who leaves and what ends with them, publishing and subscribing within the limits, mutes, text, and what the
relay reports of the room's streams. Each rule refuses with its domain error (services/rooms/errors.py,
services/rooms/p2p.py); what it changes goes into the room's record (services/rooms/state.py), and what it
causes, pushes to participants, facts and relay orders, to `Effects`.

The room knows its participants by uid and by the session that holds their place, not the sessions
themselves: the room manager finds the sessions, keeps which room each is in, and saves the room when an
operation is done.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, events_pb2, rooms_pb2

from services.core.media.kinds import KIND_NAMES
from services.core.timestamps import timestamp
from services.rooms.errors import (
    FEED_NOT_PUBLISHED,
    FEED_UNKNOWN,
    MUTE_FEED_UNKNOWN,
    MUTE_KIND_ABSENT,
    NOT_SUBSCRIBED,
    PEER_NOT_IN_ROOM,
    PUBLISH_ABANDONED,
    PUBLISH_LIMIT,
    ROOM_FULL,
    RTOKEN_MISMATCH,
    SUBSCRIBE_ABANDONED,
    SUBSCRIBE_LIMIT,
    SUBSCRIPTION_EXISTS,
)
from services.rooms.negotiations import Negotiation
from services.rooms.outcome import Effects, StopFeed, StopSubscription
from services.rooms.p2p import Engine, check_join, check_publish, check_signal, check_subscribe
from services.rooms.pushes import ExitType, LeaveType, MediaCloseCode, Push
from services.rooms.state import Feed, Participant, RoomState, Subscription


@dataclass(frozen=True)
class RoomRules:
    session_grace_s: float
    empty_room_grace_s: float
    max_participants: int
    max_feeds_per_participant: int
    max_subscriptions_per_participant: int
    negotiation_timeout_s: float
    gateway_lease_s: float
    # A device's call that nobody answers ends after this long.
    call_ring_timeout_s: float = 30.0
    # A relay that has not reported its load for this long gets no new rooms.
    relay_lease_s: float = 15.0


@dataclass(frozen=True)
class RoomContext:
    """What every room's rules use: the limits, where effects go, the relay placement and the clocks."""

    rules: RoomRules
    effects: Effects
    # The relay address of a room being placed (by room id).
    place: Callable[[str], str]
    # Whether the relay at an address is still there (services/rooms/placement.py).
    relay_live: Callable[[str], bool]
    clock: Callable[[], float]
    now: Callable[[], datetime]


@dataclass(frozen=True)
class MediaSlot:
    """Where the gateway negotiates a publish or subscribe: the room, the relay, and who negotiates."""

    room_id: str
    biz_name: str
    uid: str
    relay_address: str
    feed_id: str


@dataclass(frozen=True)
class MuteTarget:
    """Where the gateway pauses a stream: the room's relay, and the subscription (empty for a feed)."""

    room_id: str
    relay_address: str
    subscription_id: str


class Room:
    def __init__(self, state: RoomState, context: RoomContext) -> None:
        self.state = state
        self._context = context
        self._rules = context.rules
        self._effects = context.effects
        self.destroyed = False

    @classmethod
    def open(
        cls,
        context: RoomContext,
        *,
        biz_name: str,
        creator_uid: str,
        record: rooms_pb2.RecordOptions,
        engine: Engine,
        held_by_call: bool = False,
    ) -> Room:
        room = cls(
            RoomState(
                room_id=secrets.token_hex(8),
                rtoken=secrets.token_urlsafe(16),
                biz_name=biz_name,
                creator_uid=creator_uid,
                created_at=context.now(),
                record=record,
                empty_since=context.clock(),
                held_by_call=held_by_call,
                engine=engine,
            ),
            context,
        )
        room._effects.record(
            events_pb2.RoomCreated(
                room_id=room.room_id,
                biz_name=biz_name,
                creator_uid=creator_uid,
                created_at=timestamp(room.state.created_at),
                record=record,
                engine=engine,
            )
        )
        return room

    @property
    def room_id(self) -> str:
        return self.state.room_id

    @property
    def rtoken(self) -> str:
        return self.state.rtoken

    @property
    def biz_name(self) -> str:
        return self.state.biz_name

    @property
    def creator_uid(self) -> str:
        return self.state.creator_uid

    @property
    def record(self) -> rooms_pb2.RecordOptions:
        return self.state.record

    @property
    def engine(self) -> Engine:
        return self.state.engine

    @property
    def relay_address(self) -> str:
        return self.state.relay_address

    @property
    def participants(self) -> dict[str, Participant]:
        return self.state.participants

    @property
    def invitations(self) -> dict[str, dict[str, str]]:
        return self.state.invitations

    def message(self, *, with_participants: bool = True) -> rooms_pb2.Room:
        """The room; without its participants where the caller needs only the room itself (a joiner is
        sent them in its attendance list, and listing them for every join made each join cost the room's
        size twice over)."""
        message = rooms_pb2.Room(
            room_id=self.room_id,
            rtoken=self.rtoken,
            biz_name=self.biz_name,
            creator_uid=self.creator_uid,
            created_at=timestamp(self.state.created_at),
            record=self.record,
            engine=self.engine,
            relay_address=self.relay_address,
        )
        if with_participants:
            self._list_participants(message.participants, without="")
        return message

    def attendance_list(self, *, without: str) -> delivery_pb2.AttendanceList:
        attendance = delivery_pb2.AttendanceList(room_id=self.room_id)
        self._list_participants(attendance.participants, without=without)
        return attendance

    def _list_participants(
        self, participants: RepeatedCompositeFieldContainer[rooms_pb2.Participant], *, without: str
    ) -> None:
        """Each participant but `without`, made in place: a `Participant` made apart is copied into the
        list, which took this more than twice as long (~380 us for 200 participants on the bench machine,
        paid by every join). Seed 002 userType 0, an ordinary user (101 is mPaaS's playback robot, which
        Parley has not), is the field's default."""
        # The feeds by publisher in one pass over them, not one pass per participant.
        feeds: dict[str, list[rooms_pb2.FeedRef]] = {}
        for feed in self.state.feeds.values():
            feeds.setdefault(feed.uid, []).append(feed.ref())
        add = participants.add
        for uid in self.participants:
            if uid == without:
                continue
            published = feeds.get(uid)
            if published:
                add(uid=uid, feeds=published)
            else:
                add(uid=uid)

    # Joining and leaving

    def join(self, session_id: str, uid: str, rtoken: str, engine: int | None) -> Participant | None:
        """Admit a session that holds the room's token, expecting `engine` (None: whatever the room has).
        The same uid from another session (a client that reconnected without resuming, a second device)
        takes that one's place: the participant it replaced is answered."""
        if not hmac.compare_digest(self.rtoken.encode(), rtoken.encode()):
            raise RTOKEN_MISMATCH()
        previous = self.participants.get(uid)
        check_join(self.engine, engine, participants=len(self.participants), rejoining=previous is not None)
        if previous is None and len(self.participants) >= self._rules.max_participants:
            raise ROOM_FULL(f"the room has its {self._rules.max_participants} participants")
        if previous is not None:
            self.remove(uid)
        self.admit(session_id, uid)
        self._effects.push(session_id, self.attendance_list(without=uid))
        for feed in self.state.feeds.values():
            if feed.muted:
                self._effects.push(session_id, self._remote_mute(feed))
        return previous

    def admit(self, session_id: str, uid: str) -> None:
        participant = Participant(uid, session_id, self._context.now())
        self._push_others(uid, delivery_pb2.NewJoinerIn(room_id=self.room_id, uid=uid))
        self.participants[uid] = participant
        self.state.empty_since = None
        # Joining answers every invitation to the room; nobody waits for a reply that will not come.
        self.invitations.pop(uid, None)
        self._effects.record(
            events_pb2.ParticipantJoined(
                room_id=self.room_id,
                biz_name=self.biz_name,
                uid=uid,
                session_id=session_id,
                joined_at=timestamp(participant.joined_at),
                engine=self.engine,
            )
        )

    def leave(self, uid: str, exit_type: ExitType) -> Participant:
        """The participant leaves: its negotiations are dropped, its subscriptions and feeds end."""
        participant = self.participants.pop(uid)
        for dropped in self.state.negotiations.abandon(participant.session_id):
            self._stop_negotiated_feed(dropped)
        for feed, subscription in self._subscriptions_of(uid):
            del feed.subscriptions[uid]
            self._effects.order(
                StopSubscription(self.relay_address, self.room_id, subscription.subscription_id)
            )
            self._subscription_ended(feed, subscription, MediaCloseCode.LEFT_ROOM)
        self._push_others(uid, delivery_pb2.PeerLeft(room_id=self.room_id, uid=uid, exit_type=exit_type))
        for feed in self._feeds_of(uid):
            self._end_feed(feed, MediaCloseCode.PEER_LEFT, MediaCloseCode.LEFT_ROOM)
        self._effects.record(
            events_pb2.ParticipantLeft(
                room_id=self.room_id,
                biz_name=self.biz_name,
                uid=uid,
                session_id=participant.session_id,
                exit_type=exit_type,
                joined_at=timestamp(participant.joined_at),
                left_at=timestamp(self._context.now()),
                engine=self.engine,
            )
        )
        if not self.participants:
            self.state.empty_since = self._context.clock()
        return participant

    def remove(self, uid: str) -> Participant:
        """The participant is taken out without asking (an operator's kick, or its uid joined from another
        session): its session hears seed 002 OnLeaveRoom leaveType 3 (被踢出房间), the others that it left
        abnormally (OnParticipantLeaveRoom's exitType has only 1 and 2)."""
        participant = self.leave(uid, ExitType.ABNORMAL)
        self._effects.push(
            participant.session_id, delivery_pb2.LeftRoom(room_id=self.room_id, leave_type=LeaveType.REMOVED)
        )
        return participant

    def leave_all(self) -> list[Participant]:
        return [self.leave(uid, ExitType.NORMAL) for uid in list(self.participants)]

    def destroy(self) -> None:
        self.destroyed = True
        self._effects.record(
            events_pb2.RoomDestroyed(
                room_id=self.room_id,
                biz_name=self.biz_name,
                destroyed_at=timestamp(self._context.now()),
                engine=self.engine,
            )
        )

    def lapsed(self, now: float) -> bool:
        """Empty for the grace, and not a call's room (the call's end destroys that one)."""
        empty_since = self.state.empty_since
        return (
            not self.state.held_by_call
            and empty_since is not None
            and empty_since + self._rules.empty_room_grace_s <= now
        )

    # Messages

    def send_text(self, uid: str, peers: list[str], text: str) -> str:
        for peer in peers:
            if peer == uid or peer not in self.participants:
                raise PEER_NOT_IN_ROOM(f"{peer} is not another participant of the room")
        targets = list(dict.fromkeys(peers)) or [other for other in self.participants if other != uid]
        msg_id = secrets.token_hex(8)
        for target in targets:
            self._push_uid(
                target, delivery_pb2.TextReceived(room_id=self.room_id, uid=uid, text=text, msg_id=msg_id)
            )
        return msg_id

    def send_p2p_signal(self, uid: str, to: str, signal: rooms_pb2.P2PSignal) -> None:
        """Pass one participant's signal to the other participant of a P2P room."""
        check_signal(self.engine, uid, to, set(self.participants))
        self._push_uid(to, delivery_pb2.P2PSignalReceived(room_id=self.room_id, sender=uid, signal=signal))

    def push_all(self, push: Push) -> None:
        for participant in self.participants.values():
            self._effects.push(participant.session_id, push)

    # Publishing

    def reserve_publish(
        self, session_id: str, uid: str, media_type: int, tag: str, *, data_channel: bool
    ) -> MediaSlot:
        """`data_channel`: the offer asks for a DataChannel (an m=application line)."""
        check_publish(self.engine, data_channel=data_channel)
        negotiating = self.state.negotiations.publishes_of(session_id)
        if len(self._feeds_of(uid)) + negotiating >= self._rules.max_feeds_per_participant:
            raise PUBLISH_LIMIT(
                f"a participant publishes at most {self._rules.max_feeds_per_participant} feeds"
            )
        feed_id = f"f{secrets.token_hex(8)}"
        self.state.negotiations.publishing[feed_id] = Negotiation(
            session_id,
            uid,
            feed_id,
            deadline=self._deadline(),
            tag=tag,
            media_type=media_type,
            relay_address=self._place(),
        )
        return MediaSlot(self.room_id, self.biz_name, uid, self.relay_address, feed_id)

    def complete_publish(self, session_id: str, feed_id: str, tracks: tuple[media_pb2.Track, ...]) -> None:
        negotiation = self.state.negotiations.take_publish(session_id, feed_id)
        if negotiation is None:
            raise PUBLISH_ABANDONED()
        feed = Feed(
            feed_id,
            negotiation.uid,
            session_id,
            negotiation.tag,
            negotiation.media_type,
            tracks,
            published_at=self._context.now(),
        )
        self.state.feeds[feed_id] = feed
        self._push_others(feed.uid, delivery_pb2.NewPublish(room_id=self.room_id, feed=feed.ref()))
        self._effects.record(
            events_pb2.FeedPublished(
                room_id=self.room_id,
                biz_name=self.biz_name,
                feed_id=feed_id,
                uid=feed.uid,
                tag=feed.tag,
                media_type=feed.media_type,
                tracks=tracks,
                published_at=timestamp(feed.published_at),
            )
        )

    def cancel_publish(self, session_id: str, feed_id: str) -> None:
        self.state.negotiations.take_publish(session_id, feed_id)

    def unpublish(self, uid: str, feed_id: str) -> None:
        feed = self.state.feeds.get(feed_id)
        if feed is None or feed.uid != uid:
            raise FEED_NOT_PUBLISHED(f"this session publishes no feed {feed_id}")
        self._push_others(feed.uid, delivery_pb2.Unpublished(room_id=self.room_id, feed=feed.ref()))
        self._end_feed(feed, MediaCloseCode.PEER_UNPUBLISHED, MediaCloseCode.STOPPED)

    # Subscribing

    def reserve_subscribe(self, session_id: str, uid: str, feed_id: str) -> MediaSlot:
        check_subscribe(self.engine)
        feed = self.state.feeds.get(feed_id)
        if feed is None:
            raise FEED_UNKNOWN(f"no feed {feed_id} is published in the room")
        negotiations = self.state.negotiations
        if uid in feed.subscriptions or (session_id, feed_id) in negotiations.subscribing:
            raise SUBSCRIPTION_EXISTS()
        limit = self._rules.max_subscriptions_per_participant
        if len(self._subscriptions_of(uid)) + negotiations.subscribes_of(session_id) >= limit:
            raise SUBSCRIBE_LIMIT(f"a participant subscribes to at most {limit} feeds")
        negotiations.subscribing[(session_id, feed_id)] = Negotiation(
            session_id, uid, feed_id, deadline=self._deadline()
        )
        return MediaSlot(self.room_id, self.biz_name, uid, self._place(), feed_id)

    def complete_subscribe(
        self, session_id: str, feed_id: str, subscription_id: str, tracks: tuple[media_pb2.Track, ...]
    ) -> None:
        negotiation = self.state.negotiations.take_subscribe(session_id, feed_id)
        # One the relay closed already does not complete.
        if negotiation is None or subscription_id in negotiation.closed_early:
            raise SUBSCRIBE_ABANDONED()
        feed = self.state.feeds[feed_id]
        subscription = Subscription(subscription_id, negotiation.uid, session_id, tracks, self._context.now())
        feed.subscriptions[negotiation.uid] = subscription
        self._push_others(
            negotiation.uid,
            delivery_pb2.NewSubscribe(room_id=self.room_id, subscriber=negotiation.uid, feed=feed.ref()),
        )
        self._effects.record(
            events_pb2.SubscriptionStarted(
                room_id=self.room_id,
                biz_name=self.biz_name,
                feed_id=feed_id,
                subscription_id=subscription_id,
                uid=negotiation.uid,
                publisher_uid=feed.uid,
                tracks=tracks,
                started_at=timestamp(subscription.started_at),
            )
        )

    def cancel_subscribe(self, session_id: str, feed_id: str) -> None:
        self.state.negotiations.take_subscribe(session_id, feed_id)

    def unsubscribe(self, uid: str, feed_id: str) -> None:
        feed = self.state.feeds.get(feed_id)
        subscription = feed.subscriptions.get(uid) if feed is not None else None
        if feed is None or subscription is None:
            raise NOT_SUBSCRIBED(f"this session does not subscribe to feed {feed_id}")
        del feed.subscriptions[uid]
        self._effects.order(StopSubscription(self.relay_address, self.room_id, subscription.subscription_id))
        self._push_others(
            uid, delivery_pb2.Unsubscribed(room_id=self.room_id, subscriber=uid, feed=feed.ref())
        )
        self._subscription_ended(feed, subscription, MediaCloseCode.STOPPED)

    def expire_negotiations(self, now: float) -> None:
        for dropped in self.state.negotiations.expire(now):
            self._stop_negotiated_feed(dropped)

    # Stream control: what a relay reports of the room's streams, and mutes

    def stream_closed(self, feed_id: str, subscription_id: str, uid: str, code: MediaCloseCode) -> None:
        """A relay closed a publication (no `subscription_id`) or a subscription on its own, with `code`.

        It ends as if its publisher had unpublished it (or its subscriber unsubscribed), except that the
        owner is told with `code`. A stream the room no longer knows (it ended meanwhile) is ignored; one
        whose negotiation is not complete yet will not complete.
        """
        if subscription_id:
            self._subscription_closed(feed_id, subscription_id, uid, code)
        else:
            self._feed_closed(feed_id, code)

    def network_weak(
        self, feed_id: str, subscription_id: str, uid: str, *, bps_send: int, bps_recv: int
    ) -> None:
        """A relay judged a stream's network weak: its owner is told (OnNetworkWeak)."""
        feed = self.state.feeds.get(feed_id)
        if feed is None:
            return
        if subscription_id:
            subscription = feed.subscriptions.get(uid)
            if subscription is None or subscription.subscription_id != subscription_id:
                return
            owner, sid = subscription.session_id, subscription_id
        else:
            owner, sid = feed.session_id, feed_id
        self._effects.push(
            owner,
            delivery_pb2.NetworkWeak(
                room_id=self.room_id, sid=sid, feed_id=feed_id, bps_send=bps_send, bps_recv=bps_recv
            ),
        )

    def mute_local(self, uid: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        """The publisher pauses or resumes one kind of its feed; the others in the room are told."""
        feed = self._muted_feed(feed_id)
        if feed.uid != uid:
            raise FEED_NOT_PUBLISHED(f"feed {feed_id} is not this session's")
        if kind not in _kinds(feed.tracks):
            raise MUTE_KIND_ABSENT(f"feed {feed_id} has no {kind}")
        if (kind in feed.muted) != muted:
            _set_muted(feed.muted, kind, muted)
            self._push_others(feed.uid, self._remote_mute(feed))
        return MuteTarget(self.room_id, self.relay_address, "")

    def mute_remote(self, uid: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        """A subscriber pauses or resumes one kind of a feed it receives, for itself alone."""
        feed = self._muted_feed(feed_id)
        subscription = feed.subscriptions.get(uid)
        if subscription is None:
            raise NOT_SUBSCRIBED(f"this session does not subscribe to feed {feed_id}")
        if kind not in _kinds(subscription.tracks):
            raise MUTE_KIND_ABSENT(f"the subscription to feed {feed_id} receives no {kind}")
        _set_muted(subscription.muted, kind, muted)
        return MuteTarget(self.room_id, self.relay_address, subscription.subscription_id)

    # Rules shared by the operations above

    def _muted_feed(self, feed_id: str) -> Feed:
        feed = self.state.feeds.get(feed_id)
        if feed is None:
            raise MUTE_FEED_UNKNOWN(f"no feed {feed_id} is published in the room")
        return feed

    def _feed_closed(self, feed_id: str, code: MediaCloseCode) -> None:
        if self.state.negotiations.publishing.pop(feed_id, None) is not None:
            # Its CompletePublish will be refused (-1071), and the gateway answers the publish with that.
            return
        feed = self.state.feeds.get(feed_id)
        if feed is None:
            return
        self._effects.push(
            feed.session_id,
            delivery_pb2.MediaClosed(room_id=self.room_id, code=code, feed_id=feed_id, subscription_id=""),
        )
        self._push_others(feed.uid, delivery_pb2.Unpublished(room_id=self.room_id, feed=feed.ref()))
        self._end_feed(feed, MediaCloseCode.PEER_UNPUBLISHED, code, stop_at_relay=False)

    def _subscription_closed(
        self, feed_id: str, subscription_id: str, uid: str, code: MediaCloseCode
    ) -> None:
        feed = self.state.feeds.get(feed_id)
        subscription = feed.subscriptions.get(uid) if feed is not None else None
        if feed is None or subscription is None or subscription.subscription_id != subscription_id:
            for negotiation in self.state.negotiations.subscribing_to(feed_id, uid):
                negotiation.closed_early.add(subscription_id)
            return
        del feed.subscriptions[uid]
        self._effects.push(
            subscription.session_id,
            delivery_pb2.MediaClosed(
                room_id=self.room_id, code=code, feed_id=feed_id, subscription_id=subscription_id
            ),
        )
        self._push_others(
            uid, delivery_pb2.Unsubscribed(room_id=self.room_id, subscriber=uid, feed=feed.ref())
        )
        self._subscription_ended(feed, subscription, code)

    def _end_feed(
        self,
        feed: Feed,
        subscribers_code: MediaCloseCode,
        feed_code: MediaCloseCode,
        *,
        stop_at_relay: bool = True,
    ) -> None:
        del self.state.feeds[feed.feed_id]
        self.state.negotiations.drop_subscribes_to(feed.feed_id)
        for subscription in feed.subscriptions.values():
            self._effects.push(
                subscription.session_id,
                delivery_pb2.MediaClosed(
                    room_id=self.room_id,
                    code=subscribers_code,
                    feed_id=feed.feed_id,
                    subscription_id=subscription.subscription_id,
                ),
            )
            self._subscription_ended(feed, subscription, subscribers_code)
        # The relay closes the feed's subscriptions with it (and did, when it closed the feed itself).
        if stop_at_relay:
            self._effects.order(StopFeed(self.relay_address, self.room_id, feed.feed_id))
        self._effects.record(
            events_pb2.FeedUnpublished(
                room_id=self.room_id,
                biz_name=self.biz_name,
                feed_id=feed.feed_id,
                uid=feed.uid,
                code=feed_code,
                published_at=timestamp(feed.published_at),
                unpublished_at=timestamp(self._context.now()),
            )
        )

    def _subscription_ended(self, feed: Feed, subscription: Subscription, code: MediaCloseCode) -> None:
        self._effects.record(
            events_pb2.SubscriptionEnded(
                room_id=self.room_id,
                biz_name=self.biz_name,
                feed_id=feed.feed_id,
                subscription_id=subscription.subscription_id,
                uid=subscription.uid,
                publisher_uid=feed.uid,
                code=code,
                started_at=timestamp(subscription.started_at),
                ended_at=timestamp(self._context.now()),
            )
        )

    def _stop_negotiated_feed(self, negotiation: Negotiation) -> None:
        # The relay may have the feed already (the gateway went away after its answer); stopping one it
        # does not have is no error.
        self._effects.order(StopFeed(negotiation.relay_address, self.room_id, negotiation.feed_id))

    def _feeds_of(self, uid: str) -> list[Feed]:
        return [feed for feed in self.state.feeds.values() if feed.uid == uid]

    def _subscriptions_of(self, uid: str) -> list[tuple[Feed, Subscription]]:
        feeds = self.state.feeds.values()
        return [(feed, feed.subscriptions[uid]) for feed in feeds if uid in feed.subscriptions]

    def leave_dead_relay(self) -> None:
        """If the room's relay died, end the streams it had there now (the sweep calls this, so clients
        are told without waiting for someone's next publish or subscribe); the next one places the room
        on a live relay."""
        if self.state.relay_address and not self._context.relay_live(self.state.relay_address):
            self._leave_dead_relay()

    def _place(self) -> str:
        self.leave_dead_relay()
        if not self.state.relay_address:
            self.state.relay_address = self._context.place(self.room_id)
        return self.state.relay_address

    def _leave_dead_relay(self) -> None:
        """The room's relay died: every stream there ended with it. Each publisher is told as if the relay
        had closed its feed (5009), its subscribers as if it unpublished (5006 and `on_unpublish`), so the
        publishers republish and the subscribers subscribe again, on the relay placed next."""
        for feed_id in [*self.state.negotiations.publishing, *self.state.feeds]:
            self._feed_closed(feed_id, MediaCloseCode.CLOSED_BY_SERVER)
        self.state.negotiations.subscribing.clear()
        self.state.relay_address = ""

    def _deadline(self) -> float:
        return self._context.clock() + self._rules.negotiation_timeout_s

    def _remote_mute(self, feed: Feed) -> delivery_pb2.RemoteMute:
        return delivery_pb2.RemoteMute(
            room_id=self.room_id,
            feed_id=feed.feed_id,
            uid=feed.uid,
            audio_muted="audio" in feed.muted,
            video_muted="video" in feed.muted,
        )

    def _push_uid(self, uid: str, push: Push) -> None:
        self._effects.push(self.participants[uid].session_id, push)

    def _push_others(self, uid: str, push: Push) -> None:
        for other in self.participants.values():
            if other.uid != uid:
                self._effects.push(other.session_id, push)


def _kinds(tracks: Iterable[media_pb2.Track]) -> set[str]:
    return {KIND_NAMES[track.kind] for track in tracks}


def _set_muted(muted_kinds: set[str], kind: str, muted: bool) -> None:
    if muted:
        muted_kinds.add(kind)
    else:
        muted_kinds.discard(kind)
