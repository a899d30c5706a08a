"""The feeds and subscriptions on this relay node, and the rules that tie them together.

A feed is keyed by (room_id, feed_id), a subscription by (room_id, subscription_id); one uid subscribes
to one feed at most once. Each publication and subscription is its own peer connection, as each of the
seed's streams has its own stream id. Offers are checked before a peer connection is made, so a bad
request costs nothing; a peer that fails later closes alone and takes nothing else with it, except
that a feed that stops closes its subscriptions (5006).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from parley.relay.v1 import metering_pb2

from services.core.config import RelaySettings
from services.core.media.frame_tap import EncodedFrameTap, tap_receiver
from services.core.media.kinds import MEDIA_KIND
from services.relay.close_codes import CloseCode
from services.relay.codecs import accepts, choose_published_codec, preferences
from services.relay.errors import (
    ALREADY_SUBSCRIBED,
    CODEC_UNSUPPORTED,
    FEED_ALREADY_PUBLISHED,
    FEED_NOT_FOUND,
    MEDIA_MISSING,
    SUBSCRIPTION_NOT_FOUND,
    TRACK_NOT_FOUND,
)
from services.relay.fast_send import COMPILED, Outbox
from services.relay.feed import Feed, FeedTrack
from services.relay.flood_guard import FloodGuard, FloodLimits
from services.relay.forwarded_track import ForwardedTrack
from services.relay.forwarding_sender import ForwardingSender, attach_sender
from services.relay.ice import IcePolicy
from services.relay.metering import MeteringTicker, StreamLabels, StreamMeter
from services.relay.offer import RECEIVING, parse_offer
from services.relay.peer import Peer
from services.relay.room_reports import NoReports, StreamRef, StreamReports
from services.relay.subscription import ForwardedMedia, Subscription

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PublishOrder:
    biz_name: str
    room_id: str
    uid: str
    feed_id: str
    sdp_offer: str


@dataclass(frozen=True)
class SubscribeOrder:
    biz_name: str
    room_id: str
    uid: str
    feed_id: str
    sdp_offer: str
    audio: bool
    video: bool


# Closes the room manager ordered (Unpublish, Unsubscribe, and the subscriptions of a feed it stopped, or
# whose close it is told of): it knows of them, so they are not reported. Every other close is.
_ORDERED_FEED_CLOSES = {CloseCode.STOPPED}
_ORDERED_SUBSCRIPTION_CLOSES = {CloseCode.STOPPED, CloseCode.FEED_STOPPED}


class Relay:
    def __init__(
        self, settings: RelaySettings, ticker: MeteringTicker, reports: StreamReports | None = None
    ) -> None:
        self._settings = settings
        self._ice = IcePolicy(settings)
        # The compiled module, for the subscribers' send loop and the publishers' SRTP unprotect alike.
        self._compiled = COMPILED if settings.compiled_send else None
        self._outbox = Outbox(self._compiled)
        self._ticker = ticker
        self._reports = reports or NoReports()
        self.feeds: dict[tuple[str, str], Feed] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        # Keys being negotiated, so two concurrent requests cannot both pass the uniqueness checks.
        self._publishing: set[tuple[str, str]] = set()
        self._subscribing: set[tuple[str, str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set whenever a stream ends, for `emptied`.
        self._stream_ended = asyncio.Event()

    def feed(self, room_id: str, feed_id: str) -> Feed:
        feed = self.feeds.get((room_id, feed_id))
        if feed is None:
            raise FEED_NOT_FOUND(f"no feed {feed_id!r} in room {room_id!r} on this relay")
        return feed

    def subscription(self, room_id: str, subscription_id: str) -> Subscription:
        subscription = self.subscriptions.get((room_id, subscription_id))
        if subscription is None:
            raise SUBSCRIPTION_NOT_FOUND(f"no subscription {subscription_id!r} in room {room_id!r}")
        return subscription

    async def publish(self, order: PublishOrder) -> tuple[Feed, str]:
        """Negotiate a publisher's offer; return the feed and the SDP answer."""
        key = (order.room_id, order.feed_id)
        if key in self.feeds or key in self._publishing:
            raise FEED_ALREADY_PUBLISHED(f"feed {order.feed_id!r} is already in room {order.room_id!r}")
        offer = parse_offer(order.sdp_offer)
        silent = [media.mid for media in offer.media if media not in offer.sending()]
        if silent:
            raise MEDIA_MISSING(f"a publish offer only sends; m-lines {', '.join(silent)} do not")
        codecs = [choose_published_codec(media) for media in offer.media]
        publication_id = str(uuid.uuid4())
        self._publishing.add(key)
        peer = Peer(self._ice, connect_timeout_s=self._settings.connect_timeout_s, compiled=self._compiled)
        try:
            transceivers = []
            for media, codec in zip(offer.media, codecs, strict=True):
                transceiver = peer.pc.addTransceiver(media.kind, direction="recvonly")
                transceiver.setCodecPreferences(preferences(codec))
                transceivers.append(transceiver)
            await peer.accept(offer)
            tracks: dict[str, FeedTrack] = {}
            for media, codec, transceiver in zip(offer.media, codecs, transceivers, strict=True):
                track = FeedTrack(
                    kind=media.kind,
                    codec=codec,
                    receiver=transceiver.receiver,
                    media_ssrc=media.ssrc,
                    meter=_meter(order, metering_pb2.STREAM_ROLE_PUBLICATION, publication_id, media.kind),
                    keyframe_interval_s=self._settings.keyframe_interval_s,
                    outbox=self._outbox,
                )
                tap_receiver(transceiver.receiver, media.kind, EncodedFrameTap(track.on_frame, track.on_end))
                tracks[media.kind] = track
            answer = await peer.answer()
        except BaseException:
            await peer.close(CloseCode.LINK_FAILED)
            raise
        finally:
            self._publishing.discard(key)
        feed = Feed(
            biz_name=order.biz_name,
            room_id=order.room_id,
            uid=order.uid,
            feed_id=order.feed_id,
            publication_id=publication_id,
            peer=peer,
            tracks=tracks,
        )
        feed.on_closed.append(self._feed_closed)
        FloodGuard(peer, FloodLimits.of(self._settings), room_id=order.room_id, feed_id=order.feed_id).start()
        for track in tracks.values():
            self._ticker.register(track.meter)
        self.feeds[key] = feed
        log.info("feed_published", room_id=order.room_id, feed_id=order.feed_id, tracks=_describe(tracks))
        return feed, answer

    async def unpublish(self, room_id: str, feed_id: str) -> list[str]:
        """Stop a feed and its subscriptions; return the ids of the subscriptions it closed."""
        feed = self.feeds.get((room_id, feed_id))
        if feed is None:
            return []
        subscriptions = self._subscriptions_of(feed)
        await feed.close(CloseCode.STOPPED)
        await asyncio.gather(*(subscription.close(CloseCode.FEED_STOPPED) for subscription in subscriptions))
        return [subscription.subscription_id for subscription in subscriptions]

    async def subscribe(self, order: SubscribeOrder) -> tuple[Subscription, str]:
        """Negotiate a subscriber's offer for a published feed; return the subscription and the answer."""
        if not (order.audio or order.video):
            raise MEDIA_MISSING("a subscription selects audio, video or both")
        feed = self.feed(order.room_id, order.feed_id)
        taken = (order.room_id, order.feed_id, order.uid)
        if taken in self._subscribing or any(
            (s.room_id, s.feed.feed_id, s.uid) == taken for s in self.subscriptions.values()
        ):
            raise ALREADY_SUBSCRIBED(f"{order.uid!r} already subscribes to feed {order.feed_id!r}")
        offer = parse_offer(order.sdp_offer)
        selected = {"audio": order.audio, "video": order.video}
        plan = []
        for media in offer.media:
            source = feed.tracks.get(media.kind) if selected[media.kind] else None
            if source is not None and media.direction not in RECEIVING:
                source = None
            if source is not None and not accepts(media, source.codec):
                raise CODEC_UNSUPPORTED(
                    f"the feed's {media.kind} is {source.codec.mimeType}, which the offer cannot receive"
                )
            plan.append((media, source))
        if all(source is None for _, source in plan):
            raise MEDIA_MISSING(
                f"nothing to forward: the feed has {', '.join(feed.tracks) or 'no tracks'}, the offer "
                f"receives {', '.join(m.kind for m in offer.receiving()) or 'nothing'}"
            )
        subscription_id = str(uuid.uuid4())
        self._subscribing.add(taken)
        peer = Peer(self._ice, connect_timeout_s=self._settings.connect_timeout_s, compiled=self._compiled)
        forwarded: list[ForwardedMedia] = []
        try:
            for media, source in plan:
                if source is None:
                    peer.pc.addTransceiver(media.kind, direction="inactive")
                    continue
                transceiver = peer.pc.addTransceiver(media.kind, direction="sendonly")
                transceiver.setCodecPreferences(preferences(source.codec))
                meter = _meter(order, metering_pb2.STREAM_ROLE_SUBSCRIPTION, subscription_id, media.kind)
                track = ForwardedTrack(media.kind, source, meter)
                sender = ForwardingSender(track, transceiver.sender.transport, self._outbox)
                attach_sender(transceiver, sender)
                forwarded.append(ForwardedMedia(source=source, track=track, sender=sender))
            await peer.accept(offer)
            answer = await peer.answer()
            if feed.peer.close_code is not None:
                raise FEED_NOT_FOUND(f"feed {order.feed_id!r} stopped while the subscription was negotiated")
        except BaseException:
            await peer.close(CloseCode.LINK_FAILED)
            raise
        finally:
            self._subscribing.discard(taken)
        subscription = Subscription(
            biz_name=order.biz_name,
            room_id=order.room_id,
            uid=order.uid,
            subscription_id=subscription_id,
            feed=feed,
            peer=peer,
            media=forwarded,
        )
        subscription.on_closed.append(self._subscription_closed)
        for forwarding in forwarded:
            self._ticker.register(forwarding.track.meter)
        self.subscriptions[(order.room_id, subscription_id)] = subscription
        log.info(
            "subscribed",
            room_id=order.room_id,
            feed_id=order.feed_id,
            subscription_id=subscription_id,
            kinds=[forwarding.source.kind for forwarding in forwarded],
        )
        return subscription, answer

    async def unsubscribe(self, room_id: str, subscription_id: str) -> None:
        subscription = self.subscriptions.get((room_id, subscription_id))
        if subscription is not None:
            await subscription.close(CloseCode.STOPPED)

    def set_feed_paused(self, room_id: str, feed_id: str, kind: str, paused: bool) -> None:
        """The publisher (un)muted one kind of its feed: forwarding to every subscriber stops or resumes."""
        feed = self.feed(room_id, feed_id)
        track = feed.tracks.get(kind)
        if track is None:
            raise TRACK_NOT_FOUND(f"feed {feed_id!r} has no {kind}")
        track.set_paused(paused)
        log.info("feed_paused" if paused else "feed_resumed", room_id=room_id, feed_id=feed_id, kind=kind)

    def set_subscription_paused(self, room_id: str, subscription_id: str, kind: str, paused: bool) -> None:
        """The subscriber muted or unmuted one kind of the feed it receives: forwarding to it alone stops
        or resumes."""
        self.subscription(room_id, subscription_id).set_paused(kind, paused)
        log.info(
            "subscription_paused" if paused else "subscription_resumed",
            room_id=room_id,
            subscription_id=subscription_id,
            kind=kind,
        )

    async def open(self) -> None:
        """Open the relay's shared UDP port, if it has one (before it takes any stream)."""
        await self._ice.open()

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The one UDP address all this relay's media uses, or None with a port per peer connection."""
        return self._ice.udp_address

    async def close(self) -> None:
        """Close everything (the relay is stopping): subscriptions first, so none reads as 'feed stopped'."""
        await asyncio.gather(*(s.close(CloseCode.RELAY_SHUTDOWN) for s in list(self.subscriptions.values())))
        await asyncio.gather(*(f.close(CloseCode.RELAY_SHUTDOWN) for f in list(self.feeds.values())))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._ice.close()

    async def emptied(self) -> None:
        """Return once this relay carries no feed and no subscription (a draining relay may exit then)."""
        while self.feeds or self.subscriptions:
            self._stream_ended.clear()
            await self._stream_ended.wait()

    def _subscriptions_of(self, feed: Feed) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.feed is feed]

    def _feed_closed(self, feed: Feed, code: CloseCode) -> None:
        key = (feed.room_id, feed.feed_id)
        if self.feeds.get(key) is feed:
            del self.feeds[key]
        for track in feed.tracks.values():
            self._ticker.finish(track.meter)
        for subscription in self._subscriptions_of(feed):
            self._background(subscription.close(CloseCode.FEED_STOPPED))
        self._stream_ended.set()
        log.info("feed_closed", room_id=feed.room_id, feed_id=feed.feed_id, code=int(code))
        if code not in _ORDERED_FEED_CLOSES:
            self._reports.stream_closed(StreamRef(feed.room_id, feed.feed_id, feed.uid), int(code))

    def _subscription_closed(self, subscription: Subscription, code: CloseCode) -> None:
        key = (subscription.room_id, subscription.subscription_id)
        if self.subscriptions.get(key) is subscription:
            del self.subscriptions[key]
        for media in subscription.media:
            self._ticker.finish(media.track.meter)
        self._stream_ended.set()
        log.info(
            "subscription_closed",
            room_id=subscription.room_id,
            subscription_id=subscription.subscription_id,
            code=int(code),
        )
        if code not in _ORDERED_SUBSCRIPTION_CLOSES:
            self._reports.stream_closed(
                StreamRef(
                    subscription.room_id,
                    subscription.feed.feed_id,
                    subscription.uid,
                    subscription.subscription_id,
                ),
                int(code),
            )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _meter(
    order: PublishOrder | SubscribeOrder, role: metering_pb2.StreamRole.ValueType, stream_id: str, kind: str
) -> StreamMeter:
    return StreamMeter(
        StreamLabels(
            biz_name=order.biz_name,
            room_id=order.room_id,
            uid=order.uid,
            feed_id=order.feed_id,
            role=role,
            stream_id=stream_id,
            kind=MEDIA_KIND[kind],
        )
    )


def _describe(tracks: dict[str, FeedTrack]) -> dict[str, str]:
    return {kind: track.codec.mimeType for kind, track in tracks.items()}
