"""The room manager's rules, in one plain object: sessions, rooms, invitations, text, and the bookkeeping
of feeds and subscriptions. No transport here: each operation changes the state, queues the pushes it
owes to sessions (services/rooms/sessions.py) and collects the facts and relay orders it caused, which
the service takes with `outcome()` after every operation and sends on.

Timed rules (a session's grace, an empty room's grace, a negotiation's timeout, a gateway's lease) are
applied by `sweep()`, which the service calls a few times a second.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.core.errors import INVALID_ARGUMENT, NOT_FOUND, ErrorKind
from services.rooms.calls import CallRules, Calls
from services.rooms.changes import (
    Change,
    FeedPublished,
    FeedUnpublished,
    ParticipantJoined,
    ParticipantLeft,
    RecordOptions,
    RoomCreated,
    RoomDestroyed,
    SubscriptionEnded,
    SubscriptionStarted,
    Track,
)
from services.rooms.errors import (
    ALREADY_IN_ROOM,
    FEED_NOT_PUBLISHED,
    FEED_UNKNOWN,
    INVITATION_NOT_FOUND,
    INVITE_NOT_IN_ROOM,
    INVITEE_IS_INVITER,
    MUTE_FEED_UNKNOWN,
    MUTE_KIND_ABSENT,
    NOT_IN_ROOM,
    NOT_SUBSCRIBED,
    PEER_NOT_IN_ROOM,
    PUBLISH_ABANDONED,
    PUBLISH_LIMIT,
    PUBLISH_NOT_IN_ROOM,
    ROOM_FULL,
    ROOM_NOT_FOUND,
    RTOKEN_MISMATCH,
    SUBSCRIBE_ABANDONED,
    SUBSCRIBE_LIMIT,
    SUBSCRIBE_NOT_IN_ROOM,
    SUBSCRIBE_NOTHING,
    SUBSCRIPTION_EXISTS,
    TEXT_NOT_IN_ROOM,
)
from services.rooms.p2p import (
    Engine,
    P2PSignal,
    check_join,
    check_publish,
    check_signal,
    check_subscribe,
    room_engine,
)
from services.rooms.placement import RelayPlacement
from services.rooms.pushes import (
    AttendanceList,
    ExitType,
    InviteReplied,
    InviteReply,
    InviteRequested,
    LeaveType,
    LeftRoom,
    MediaCloseCode,
    MediaClosed,
    NetworkWeak,
    NewJoinerIn,
    NewPublish,
    NewSubscribe,
    P2PSignalReceived,
    PeerLeft,
    Push,
    RemoteMute,
    TextReceived,
    Unpublished,
    Unsubscribed,
)
from services.rooms.rooms import Feed, Negotiation, Participant, Room, Subscription
from services.rooms.sessions import Attachment, ClientSession, HeldConnection, SessionBook


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
class StopFeed:
    relay_address: str
    room_id: str
    feed_id: str


@dataclass(frozen=True)
class StopSubscription:
    relay_address: str
    room_id: str
    subscription_id: str


RelayOrder = StopFeed | StopSubscription


@dataclass
class Outcome:
    """What an operation caused besides its answer: gateways with pushes queued, facts, relay orders."""

    gateways: set[str] = field(default_factory=set)
    changes: list[Change] = field(default_factory=list)
    relay_orders: list[RelayOrder] = field(default_factory=list)


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


# Subscriptions a relay reported closed before their CompleteSubscribe came: remembered (this many at
# most) so that their completion is refused rather than a dead subscription recorded.
_EARLY_CLOSES_KEPT = 1024


class RoomManager:
    def __init__(
        self,
        rules: RoomRules,
        *,
        relay_address: str,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rules = rules
        # `relay_address` serves the rooms placed while no relay has registered.
        self.relays = RelayPlacement(fallback=relay_address, lease_s=rules.relay_lease_s, clock=clock)
        self._clock = clock
        self._now = now
        self.sessions = SessionBook(grace_s=rules.session_grace_s, lease_s=rules.gateway_lease_s, clock=clock)
        self._rooms: dict[str, Room] = {}
        self._publishing: dict[str, Negotiation] = {}
        self._subscribing: dict[tuple[str, str], Negotiation] = {}
        self._closed_early: dict[str, None] = {}
        # (biz_name, invitee uid) -> rooms with an invitation waiting for its answer.
        self._invited: dict[tuple[str, str], set[str]] = {}
        self._outcome = Outcome()
        self.calls = Calls(
            CallRules(ring_timeout_s=rules.call_ring_timeout_s),
            self.sessions,
            open_room=self._open_call_room,
            close_room=self._close_call_room,
            record=self._change,
            clock=clock,
            now=now,
        )

    @property
    def rooms(self) -> int:
        return len(self._rooms)

    @property
    def participants(self) -> int:
        return sum(len(room.participants) for room in self._rooms.values())

    @property
    def lease_s(self) -> float:
        return self._rules.gateway_lease_s

    def outcome(self) -> Outcome:
        outcome, self._outcome = self._outcome, Outcome()
        outcome.gateways = self.sessions.ready_gateways()
        return outcome

    # Sessions

    def open_session(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> None:
        self.sessions.open(session_id, biz_name, uid, attachment)

    def resume_session(self, session_id: str, biz_name: str, uid: str, attachment: Attachment) -> str | None:
        """The room the resumed session is in, if any."""
        return self.sessions.resume(session_id, biz_name, uid, attachment).room_id

    def detach_session(self, session_id: str, connection_id: str) -> None:
        self.sessions.detach(session_id, connection_id)

    def close_session(self, session_id: str, connection_id: str) -> None:
        session = self.sessions.find(session_id)
        if session is not None and session.attachment.connection_id == connection_id:
            self._end_session(session, ExitType.NORMAL)

    def heartbeat(self, gateway_id: str, address: str, held: Iterable[HeldConnection]) -> None:
        self.sessions.heartbeat(gateway_id, address, held)

    # Rooms

    def create_room(
        self,
        *,
        biz_name: str,
        creator_uid: str,
        session_id: str,
        record: RecordOptions,
        engine: int = Engine.SFU,
    ) -> Room:
        engine = room_engine(engine, default_record=record.default_record)
        session = None
        if session_id:
            session = self.sessions.get(session_id)
            if session.room_id is not None:
                raise ALREADY_IN_ROOM()
            biz_name, creator_uid = session.biz_name, session.uid
        elif not biz_name or not creator_uid:
            raise INVALID_ARGUMENT("biz_name and creator_uid are required")
        room = Room(
            room_id=secrets.token_hex(8),
            rtoken=secrets.token_urlsafe(16),
            biz_name=biz_name,
            creator_uid=creator_uid,
            created_at=self._now(),
            record=record,
            empty_since=self._clock(),
            engine=engine,
        )
        self._rooms[room.room_id] = room
        self._change(RoomCreated(room.room_id, biz_name, creator_uid, room.created_at, record, room.engine))
        if session is not None:
            self._admit(room, session)
        return room

    def get_room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise NOT_FOUND(f"room {room_id} does not exist")
        return room

    def join_room(self, session_id: str, room_id: str, rtoken: str, engine: int | None = None) -> Room:
        """`engine` is what the joiner expects; None joins whatever the room has."""
        session = self.sessions.get(session_id)
        if session.room_id is not None:
            raise ALREADY_IN_ROOM()
        room = self._rooms.get(room_id)
        # Another app's room is answered like a missing one: the answer tells nothing about it.
        if room is None or room.biz_name != session.biz_name:
            raise ROOM_NOT_FOUND(f"room {room_id} does not exist")
        if not hmac.compare_digest(room.rtoken.encode(), rtoken.encode()):
            raise RTOKEN_MISMATCH()
        previous = room.participants.get(session.uid)
        check_join(room.engine, engine, participants=len(room.participants), rejoining=previous is not None)
        if previous is None and len(room.participants) >= self._rules.max_participants:
            raise ROOM_FULL(f"the room has its {self._rules.max_participants} participants")
        if previous is not None:
            # The same uid from another session (a client that reconnected without resuming, a second
            # device): the newer session takes its place.
            self._leave(room, previous, ExitType.ABNORMAL)
            replaced = self.sessions.find(previous.session_id)
            if replaced is not None:
                self.sessions.push(replaced, LeftRoom(room.room_id, LeaveType.REMOVED))
        self._admit(room, session)
        self.sessions.push(session, AttendanceList(room.room_id, room.attendance(without=session.uid)))
        for feed in room.feeds.values():
            if feed.muted:
                self.sessions.push(session, _remote_mute(room, feed))
        return room

    def leave_room(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        room = self._room_of(session, NOT_IN_ROOM)
        self._leave(room, room.participants[session.uid], ExitType.NORMAL)

    def send_text(self, session_id: str, peers: list[str], text: str) -> str:
        session = self.sessions.get(session_id)
        room = self._room_of(session, TEXT_NOT_IN_ROOM)
        for peer in peers:
            if peer == session.uid or peer not in room.participants:
                raise PEER_NOT_IN_ROOM(f"{peer} is not another participant of the room")
        targets = list(dict.fromkeys(peers)) or [uid for uid in room.participants if uid != session.uid]
        msg_id = secrets.token_hex(8)
        for uid in targets:
            self._push_participant(
                room.participants[uid], TextReceived(room.room_id, session.uid, text, msg_id)
            )
        return msg_id

    # Invitations

    def invite(self, session_id: str, uids: list[str], extra: str) -> None:
        session = self.sessions.get(session_id)
        room = self._room_of(session, INVITE_NOT_IN_ROOM)
        if session.uid in uids:
            raise INVITEE_IS_INVITER()
        for uid in dict.fromkeys(uids):
            invitee_sessions = self.sessions.sessions_of(session.biz_name, uid)
            if not invitee_sessions:
                self._push_user(
                    session.biz_name, session.uid, InviteReplied(room.room_id, uid, InviteReply.OFFLINE)
                )
                continue
            room.invitations.setdefault(uid, {})[session.uid] = extra
            self._invited.setdefault((session.biz_name, uid), set()).add(room.room_id)
            for invitee in invitee_sessions:
                self.sessions.push(invitee, InviteRequested(room.room_id, room.rtoken, session.uid, extra))

    def reply_invite(self, session_id: str, room_id: str, reply: InviteReply, inviter: str) -> None:
        session = self.sessions.get(session_id)
        room = self._rooms.get(room_id)
        invitation = room.invitations.get(session.uid) if room and room.biz_name == session.biz_name else None
        if room is None or not invitation or (inviter and inviter not in invitation):
            raise INVITATION_NOT_FOUND(f"no invitation to room {room_id} is waiting for an answer")
        for answered in [inviter] if inviter else list(invitation):
            del invitation[answered]
            self._push_user(session.biz_name, answered, InviteReplied(room_id, session.uid, reply))
        if not invitation:
            self._forget_invitation(room, session.uid)

    # Feeds and subscriptions

    def start_publish(
        self, session_id: str, media_type: int, tag: str, *, data_channel: bool = False
    ) -> MediaSlot:
        """`data_channel`: the offer asks for a DataChannel (an m=application line)."""
        session = self.sessions.get(session_id)
        room = self._room_of(session, PUBLISH_NOT_IN_ROOM)
        check_publish(room.engine, data_channel=data_channel)
        negotiating = sum(1 for n in self._publishing.values() if n.session_id == session_id)
        if len(room.feeds_of(session.uid)) + negotiating >= self._rules.max_feeds_per_participant:
            raise PUBLISH_LIMIT(
                f"a participant publishes at most {self._rules.max_feeds_per_participant} feeds"
            )
        feed_id = f"f{secrets.token_hex(8)}"
        self._publishing[feed_id] = Negotiation(
            session_id,
            session.uid,
            room.room_id,
            feed_id,
            deadline=self._clock() + self._rules.negotiation_timeout_s,
            tag=tag,
            media_type=media_type,
            relay_address=self._place(room),
        )
        return MediaSlot(room.room_id, room.biz_name, session.uid, room.relay_address, feed_id)

    def complete_publish(self, session_id: str, feed_id: str, tracks: tuple[Track, ...]) -> None:
        negotiation = self._publishing.get(feed_id)
        if negotiation is None or negotiation.session_id != session_id:
            raise PUBLISH_ABANDONED()
        del self._publishing[feed_id]
        room = self._rooms[negotiation.room_id]
        feed = Feed(
            feed_id,
            negotiation.uid,
            session_id,
            negotiation.tag,
            negotiation.media_type,
            tracks,
            published_at=self._now(),
        )
        room.feeds[feed_id] = feed
        self._push_others(room, feed.uid, NewPublish(room.room_id, feed.info()))
        self._change(
            FeedPublished(
                room.room_id,
                room.biz_name,
                feed_id,
                feed.uid,
                feed.tag,
                feed.media_type,
                tracks,
                feed.published_at,
            )
        )

    def cancel_publish(self, session_id: str, feed_id: str) -> None:
        negotiation = self._publishing.get(feed_id)
        if negotiation is not None and negotiation.session_id == session_id:
            del self._publishing[feed_id]

    def unpublish(self, session_id: str, feed_id: str) -> None:
        session = self.sessions.get(session_id)
        room = self._room_of(session, NOT_IN_ROOM)
        feed = room.feeds.get(feed_id)
        if feed is None or feed.uid != session.uid:
            raise FEED_NOT_PUBLISHED(f"this session publishes no feed {feed_id}")
        self._push_others(room, feed.uid, Unpublished(room.room_id, feed.info()))
        self._end_feed(room, feed, MediaCloseCode.PEER_UNPUBLISHED, MediaCloseCode.STOPPED)

    def start_subscribe(self, session_id: str, feed_id: str, *, audio: bool, video: bool) -> MediaSlot:
        if not audio and not video:
            raise SUBSCRIBE_NOTHING()
        session = self.sessions.get(session_id)
        room = self._room_of(session, SUBSCRIBE_NOT_IN_ROOM)
        check_subscribe(room.engine)
        feed = room.feeds.get(feed_id)
        if feed is None:
            raise FEED_UNKNOWN(f"no feed {feed_id} is published in the room")
        if session.uid in feed.subscriptions or (session_id, feed_id) in self._subscribing:
            raise SUBSCRIPTION_EXISTS()
        negotiating = sum(1 for n in self._subscribing.values() if n.session_id == session_id)
        limit = self._rules.max_subscriptions_per_participant
        if len(room.subscriptions_of(session.uid)) + negotiating >= limit:
            raise SUBSCRIBE_LIMIT(f"a participant subscribes to at most {limit} feeds")
        self._subscribing[(session_id, feed_id)] = Negotiation(
            session_id,
            session.uid,
            room.room_id,
            feed_id,
            deadline=self._clock() + self._rules.negotiation_timeout_s,
        )
        return MediaSlot(room.room_id, room.biz_name, session.uid, self._place(room), feed_id)

    def complete_subscribe(
        self, session_id: str, feed_id: str, subscription_id: str, tracks: tuple[Track, ...]
    ) -> None:
        negotiation = self._subscribing.pop((session_id, feed_id), None)
        if subscription_id in self._closed_early:
            # The relay closed it already.
            del self._closed_early[subscription_id]
            negotiation = None
        if negotiation is None:
            raise SUBSCRIBE_ABANDONED()
        room = self._rooms[negotiation.room_id]
        feed = room.feeds[feed_id]
        subscription = Subscription(subscription_id, negotiation.uid, session_id, tracks, self._now())
        feed.subscriptions[negotiation.uid] = subscription
        self._push_others(room, negotiation.uid, NewSubscribe(room.room_id, negotiation.uid, feed.info()))
        self._change(
            SubscriptionStarted(
                room.room_id,
                room.biz_name,
                feed_id,
                subscription_id,
                negotiation.uid,
                feed.uid,
                tracks,
                subscription.started_at,
            )
        )

    def cancel_subscribe(self, session_id: str, feed_id: str) -> None:
        self._subscribing.pop((session_id, feed_id), None)

    def unsubscribe(self, session_id: str, feed_id: str) -> None:
        session = self.sessions.get(session_id)
        room = self._room_of(session, NOT_IN_ROOM)
        feed = room.feeds.get(feed_id)
        subscription = feed.subscriptions.get(session.uid) if feed is not None else None
        if feed is None or subscription is None:
            raise NOT_SUBSCRIBED(f"this session does not subscribe to feed {feed_id}")
        del feed.subscriptions[session.uid]
        self._outcome.relay_orders.append(
            StopSubscription(room.relay_address, room.room_id, subscription.subscription_id)
        )
        self._push_others(room, session.uid, Unsubscribed(room.room_id, session.uid, feed.info()))
        self._subscription_ended(room, feed, subscription, MediaCloseCode.STOPPED)

    # P2P rooms

    def send_p2p_signal(self, session_id: str, to: str, signal: P2PSignal) -> None:
        """Pass one participant's signal to the other participant of their P2P room, on whichever gateway
        holds its session; its pushes keep the order the signals came in."""
        session = self.sessions.get(session_id)
        room = self._room_of(session, NOT_IN_ROOM)
        check_signal(room.engine, session.uid, to, set(room.participants))
        self._push_participant(room.participants[to], P2PSignalReceived(room.room_id, session.uid, signal))

    # Stream control: what a relay reports of its streams, and mutes

    def stream_closed(
        self, room_id: str, feed_id: str, subscription_id: str, uid: str, code: MediaCloseCode
    ) -> None:
        """A relay closed a publication (no `subscription_id`) or a subscription on its own, with `code`.

        The room manager ends it as if its publisher had unpublished it (or its subscriber unsubscribed),
        except that the owner is told with `code`. A stream it no longer knows (it ended meanwhile) is
        ignored; one whose negotiation is not complete yet will not complete.
        """
        room = self._rooms.get(room_id)
        if room is None:
            return
        if subscription_id:
            self._subscription_closed(room, feed_id, subscription_id, uid, code)
        else:
            self._feed_closed(room, feed_id, code)

    def network_weak(
        self, room_id: str, feed_id: str, subscription_id: str, uid: str, *, bps_send: int, bps_recv: int
    ) -> None:
        """A relay judged a stream's network weak: its owner is told (OnNetworkWeak)."""
        room = self._rooms.get(room_id)
        feed = room.feeds.get(feed_id) if room is not None else None
        if room is None or feed is None:
            return
        if subscription_id:
            subscription = feed.subscriptions.get(uid)
            if subscription is None or subscription.subscription_id != subscription_id:
                return
            owner, sid = subscription.session_id, subscription_id
        else:
            owner, sid = feed.session_id, feed_id
        self._push_session(owner, NetworkWeak(room_id, sid, feed_id, bps_send, bps_recv))

    def mute_local(self, session_id: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        """The publisher pauses or resumes one kind of its feed; the others in the room are told."""
        session, room, feed = self._muted_feed(session_id, feed_id)
        if feed.uid != session.uid:
            raise FEED_NOT_PUBLISHED(f"feed {feed_id} is not this session's")
        if kind not in {track.kind for track in feed.tracks}:
            raise MUTE_KIND_ABSENT(f"feed {feed_id} has no {kind}")
        if (kind in feed.muted) != muted:
            _set_muted(feed.muted, kind, muted)
            self._push_others(room, feed.uid, _remote_mute(room, feed))
        return MuteTarget(room.room_id, room.relay_address, "")

    def mute_remote(self, session_id: str, feed_id: str, kind: str, muted: bool) -> MuteTarget:
        """A subscriber pauses or resumes one kind of a feed it receives, for itself alone."""
        session, room, feed = self._muted_feed(session_id, feed_id)
        subscription = feed.subscriptions.get(session.uid)
        if subscription is None:
            raise NOT_SUBSCRIBED(f"this session does not subscribe to feed {feed_id}")
        if kind not in {track.kind for track in subscription.tracks}:
            raise MUTE_KIND_ABSENT(f"the subscription to feed {feed_id} receives no {kind}")
        _set_muted(subscription.muted, kind, muted)
        return MuteTarget(room.room_id, room.relay_address, subscription.subscription_id)

    def _muted_feed(self, session_id: str, feed_id: str) -> tuple[ClientSession, Room, Feed]:
        session = self.sessions.get(session_id)
        room = self._room_of(session, NOT_IN_ROOM)
        feed = room.feeds.get(feed_id)
        if feed is None:
            raise MUTE_FEED_UNKNOWN(f"no feed {feed_id} is published in the room")
        return session, room, feed

    # Time

    def sweep(self) -> None:
        for session in self.sessions.lapsed():
            self._end_session(session, ExitType.ABNORMAL)
        self.calls.sweep()
        now = self._clock()
        for room in list(self._rooms.values()):
            if (
                not room.held_by_call
                and room.empty_since is not None
                and room.empty_since + self._rules.empty_room_grace_s <= now
            ):
                self._destroy(room)
        for feed_id, negotiation in list(self._publishing.items()):
            if negotiation.deadline <= now:
                self._drop_publish_negotiation(feed_id)
        for key, negotiation in list(self._subscribing.items()):
            if negotiation.deadline <= now:
                del self._subscribing[key]

    # Rules shared by the operations above

    def _room_of(self, session: ClientSession, not_in_room: ErrorKind) -> Room:
        if session.room_id is None:
            raise not_in_room()
        return self._rooms[session.room_id]

    def _admit(self, room: Room, session: ClientSession) -> None:
        participant = Participant(session.uid, session.session_id, self._now())
        self._push_others(room, session.uid, NewJoinerIn(room.room_id, session.uid))
        room.participants[session.uid] = participant
        room.empty_since = None
        session.room_id = room.room_id
        # Joining answers every invitation to the room; nobody waits for a reply that will not come.
        if session.uid in room.invitations:
            self._forget_invitation(room, session.uid)
        self._change(
            ParticipantJoined(
                room.room_id,
                room.biz_name,
                session.uid,
                session.session_id,
                participant.joined_at,
                room.engine,
            )
        )

    def _leave(self, room: Room, participant: Participant, exit_type: ExitType) -> None:
        del room.participants[participant.uid]
        session = self.sessions.find(participant.session_id)
        if session is not None:
            session.room_id = None
        self._abandon_negotiations(participant.session_id)
        for feed, subscription in room.subscriptions_of(participant.uid):
            del feed.subscriptions[participant.uid]
            self._outcome.relay_orders.append(
                StopSubscription(room.relay_address, room.room_id, subscription.subscription_id)
            )
            self._subscription_ended(room, feed, subscription, MediaCloseCode.LEFT_ROOM)
        self._push_others(room, participant.uid, PeerLeft(room.room_id, participant.uid, exit_type))
        for feed in room.feeds_of(participant.uid):
            self._end_feed(room, feed, MediaCloseCode.PEER_LEFT, MediaCloseCode.LEFT_ROOM)
        self._change(
            ParticipantLeft(
                room.room_id,
                room.biz_name,
                participant.uid,
                participant.session_id,
                exit_type,
                participant.joined_at,
                self._now(),
                room.engine,
            )
        )
        if not room.participants:
            room.empty_since = self._clock()

    def _feed_closed(self, room: Room, feed_id: str, code: MediaCloseCode) -> None:
        negotiation = self._publishing.get(feed_id)
        if negotiation is not None and negotiation.room_id == room.room_id:
            # Its CompletePublish will be refused (-1071), and the gateway answers the publish with that.
            del self._publishing[feed_id]
            return
        feed = room.feeds.get(feed_id)
        if feed is None:
            return
        self._push_session(feed.session_id, MediaClosed(room.room_id, code, feed_id, ""))
        self._push_others(room, feed.uid, Unpublished(room.room_id, feed.info()))
        self._end_feed(room, feed, MediaCloseCode.PEER_UNPUBLISHED, code, stop_at_relay=False)

    def _subscription_closed(
        self, room: Room, feed_id: str, subscription_id: str, uid: str, code: MediaCloseCode
    ) -> None:
        feed = room.feeds.get(feed_id)
        subscription = feed.subscriptions.get(uid) if feed is not None else None
        if feed is None or subscription is None or subscription.subscription_id != subscription_id:
            negotiating = {(n.room_id, n.feed_id, n.uid) for n in self._subscribing.values()}
            if (room.room_id, feed_id, uid) in negotiating:
                self._closed_early[subscription_id] = None
                if len(self._closed_early) > _EARLY_CLOSES_KEPT:
                    del self._closed_early[next(iter(self._closed_early))]
            return
        del feed.subscriptions[uid]
        self._push_session(subscription.session_id, MediaClosed(room.room_id, code, feed_id, subscription_id))
        self._push_others(room, uid, Unsubscribed(room.room_id, uid, feed.info()))
        self._subscription_ended(room, feed, subscription, code)

    def _end_feed(
        self,
        room: Room,
        feed: Feed,
        subscribers_code: MediaCloseCode,
        feed_code: MediaCloseCode,
        *,
        stop_at_relay: bool = True,
    ) -> None:
        del room.feeds[feed.feed_id]
        for key, negotiation in list(self._subscribing.items()):
            if negotiation.feed_id == feed.feed_id:
                del self._subscribing[key]
        for subscription in feed.subscriptions.values():
            subscriber = self.sessions.find(subscription.session_id)
            if subscriber is not None:
                self.sessions.push(
                    subscriber,
                    MediaClosed(room.room_id, subscribers_code, feed.feed_id, subscription.subscription_id),
                )
            self._subscription_ended(room, feed, subscription, subscribers_code)
        # The relay closes the feed's subscriptions with it (and did, when it closed the feed itself).
        if stop_at_relay:
            self._outcome.relay_orders.append(StopFeed(room.relay_address, room.room_id, feed.feed_id))
        self._change(
            FeedUnpublished(
                room.room_id, room.biz_name, feed.feed_id, feed.uid, feed_code, feed.published_at, self._now()
            )
        )

    def _subscription_ended(
        self, room: Room, feed: Feed, subscription: Subscription, code: MediaCloseCode
    ) -> None:
        self._change(
            SubscriptionEnded(
                room.room_id,
                room.biz_name,
                feed.feed_id,
                subscription.subscription_id,
                subscription.uid,
                feed.uid,
                code,
                subscription.started_at,
                self._now(),
            )
        )

    def _abandon_negotiations(self, session_id: str) -> None:
        for feed_id, negotiation in list(self._publishing.items()):
            if negotiation.session_id == session_id:
                self._drop_publish_negotiation(feed_id)
        for key in [key for key in self._subscribing if key[0] == session_id]:
            del self._subscribing[key]

    def _drop_publish_negotiation(self, feed_id: str) -> None:
        negotiation = self._publishing.pop(feed_id)
        # The relay may have the feed already (the gateway went away after its answer); stopping one it
        # does not have is no error.
        self._outcome.relay_orders.append(StopFeed(negotiation.relay_address, negotiation.room_id, feed_id))

    def _end_session(self, session: ClientSession, exit_type: ExitType) -> None:
        if session.room_id is not None:
            room = self._rooms[session.room_id]
            self._leave(room, room.participants[session.uid], exit_type)
        self.sessions.end(session.session_id)
        self.calls.session_closed(session, network_lost=exit_type is ExitType.ABNORMAL)
        if not self.sessions.sessions_of(session.biz_name, session.uid):
            self._invitee_gone(session.biz_name, session.uid)

    def _open_call_room(self, biz_name: str, creator_uid: str) -> Room:
        room = self.create_room(
            biz_name=biz_name, creator_uid=creator_uid, session_id="", record=RecordOptions()
        )
        room.held_by_call = True
        return room

    def _close_call_room(self, room_id: str) -> None:
        """A call ended: its sides leave its room (their streams stop), which is then destroyed."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        for participant in list(room.participants.values()):
            self._leave(room, participant, ExitType.NORMAL)
        self._destroy(room)

    def _invitee_gone(self, biz_name: str, uid: str) -> None:
        """A user with invitations waiting has no session left: the inviters hear "offline"."""
        for room_id in sorted(self._invited.pop((biz_name, uid), set())):
            room = self._rooms.get(room_id)
            if room is None:
                continue
            for inviter in room.invitations.pop(uid, {}):
                self._push_user(biz_name, inviter, InviteReplied(room_id, uid, InviteReply.OFFLINE))

    def _forget_invitation(self, room: Room, invitee: str) -> None:
        room.invitations.pop(invitee, None)
        rooms = self._invited.get((room.biz_name, invitee))
        if rooms is not None:
            rooms.discard(room.room_id)
            if not rooms:
                del self._invited[(room.biz_name, invitee)]

    def _place(self, room: Room) -> str:
        if not room.relay_address:
            room.relay_address = self.relays.place(room.room_id)
        return room.relay_address

    def _destroy(self, room: Room) -> None:
        del self._rooms[room.room_id]
        self.relays.release(room.room_id)
        for invitee in list(room.invitations):
            self._forget_invitation(room, invitee)
        self._change(RoomDestroyed(room.room_id, room.biz_name, self._now(), room.engine))

    # Cloud recording (services/rooms/recording_events.py)

    def push_room(self, room_id: str, push: Push) -> None:
        """Push to everyone in the room, if the room is still there."""
        room = self._rooms.get(room_id)
        if room is not None:
            for participant in room.participants.values():
                self._push_participant(participant, push)

    def discard_room(self, room_id: str) -> None:
        """Undo a room's creation (its recording, which it strongly depends on, did not start): its
        creator leaves it and it is destroyed."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        for participant in list(room.participants.values()):
            self._leave(room, participant, ExitType.NORMAL)
        self._destroy(room)

    def _push_participant(self, participant: Participant, push: Push) -> None:
        self._push_session(participant.session_id, push)

    def _push_session(self, session_id: str, push: Push) -> None:
        session = self.sessions.find(session_id)
        if session is not None:
            self.sessions.push(session, push)

    def _push_others(self, room: Room, uid: str, push: Push) -> None:
        for other in room.participants.values():
            if other.uid != uid:
                self._push_participant(other, push)

    def _push_user(self, biz_name: str, uid: str, push: Push) -> None:
        for session in self.sessions.sessions_of(biz_name, uid):
            self.sessions.push(session, push)

    def _change(self, change: Change) -> None:
        self._outcome.changes.append(change)


def _remote_mute(room: Room, feed: Feed) -> RemoteMute:
    return RemoteMute(room.room_id, feed.feed_id, feed.uid, "audio" in feed.muted, "video" in feed.muted)


def _set_muted(muted_kinds: set[str], kind: str, muted: bool) -> None:
    if muted:
        muted_kinds.add(kind)
    else:
        muted_kinds.discard(kind)
