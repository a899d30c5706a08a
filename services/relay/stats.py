"""Counters of a feed or a subscription as the API reports them: the relay's own forwarding counts
beside the RTP statistics of aiortc's receivers and senders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.relay.v1 import relay_pb2

from services.core.media.kinds import MEDIA_KIND
from services.relay.feed import Feed
from services.relay.peer import Peer
from services.relay.subscription import Subscription


@dataclass(frozen=True)
class StreamCounters:
    """Running totals of one stream, for judging its network (services/relay/quality.py)."""

    # RTP packets that should have arrived (a publication: received + lost at the relay; a subscription:
    # sent by the relay) and those lost of them (a subscription: as its receiver reports say).
    expected: int
    lost: int
    # Encoded media bytes received (a publication) or forwarded (a subscription).
    bytes: int
    # The latest round-trip time to a subscriber (0 when unknown, and for a publication).
    round_trip_time_s: float


def _state(peer: Peer) -> relay_pb2.StreamState.ValueType:
    return relay_pb2.STREAM_STATE_CONNECTED if peer.connected else relay_pb2.STREAM_STATE_CONNECTING


def _of_type(report: dict[str, Any], kind: str) -> Any | None:
    return next((entry for entry in report.values() if getattr(entry, "type", None) == kind), None)


async def feed_stats(feed: Feed, subscriptions: int) -> relay_pb2.FeedStats:
    tracks = []
    for track in feed.tracks.values():
        inbound = _of_type(await track.receiver.getStats(), "inbound-rtp")
        width, height = track.size or (0, 0)
        tracks.append(
            relay_pb2.InboundTrackStats(
                kind=MEDIA_KIND[track.kind],
                codec=track.codec.mimeType,
                packets_received=inbound.packetsReceived if inbound else 0,
                packets_lost=inbound.packetsLost if inbound else 0,
                frames=track.frames,
                key_frames=track.key_frames,
                bytes=track.bytes,
                width=width,
                height=height,
                tier=track.tier,
                key_frame_requests=track.keyframes.sent,
                paused=track.paused,
            )
        )
    return relay_pb2.FeedStats(
        feed_id=feed.feed_id,
        uid=feed.uid,
        publication_id=feed.publication_id,
        state=_state(feed.peer),
        subscriptions=subscriptions,
        tracks=tracks,
    )


async def subscription_stats(subscription: Subscription) -> relay_pb2.SubscriptionStats:
    tracks = []
    for media in subscription.media:
        report = await media.sender.getStats()
        outbound = _of_type(report, "outbound-rtp")
        remote = _of_type(report, "remote-inbound-rtp")
        tracks.append(
            relay_pb2.OutboundTrackStats(
                kind=MEDIA_KIND[media.source.kind],
                codec=media.source.codec.mimeType,
                frames_forwarded=media.track.frames_forwarded,
                bytes_forwarded=media.track.bytes_forwarded,
                frames_dropped=media.track.frames_dropped,
                packets_sent=outbound.packetsSent if outbound else 0,
                packets_lost=remote.packetsLost if remote else 0,
                round_trip_time_s=(remote.roundTripTime or 0.0) if remote else 0.0,
                key_frame_requests=media.sender.keyframe_requests,
                paused=media.track.paused,
            )
        )
    return relay_pb2.SubscriptionStats(
        subscription_id=subscription.subscription_id,
        feed_id=subscription.feed.feed_id,
        uid=subscription.uid,
        state=_state(subscription.peer),
        tracks=tracks,
    )


async def publication_counters(feed: Feed) -> StreamCounters:
    """What the relay received from a publisher so far, over all its tracks."""
    expected = lost = 0
    for track in feed.tracks.values():
        inbound = _of_type(await track.receiver.getStats(), "inbound-rtp")
        if inbound is not None:
            expected += inbound.packetsReceived + max(inbound.packetsLost, 0)
            lost += max(inbound.packetsLost, 0)
    return StreamCounters(
        expected=expected, lost=lost, bytes=sum(t.bytes for t in feed.tracks.values()), round_trip_time_s=0.0
    )


async def subscription_counters(subscription: Subscription) -> StreamCounters:
    """What the relay sent a subscriber so far, and what the subscriber's receiver reports say it lost."""
    expected = lost = 0
    round_trip_time_s = 0.0
    for media in subscription.media:
        report = await media.sender.getStats()
        outbound = _of_type(report, "outbound-rtp")
        remote = _of_type(report, "remote-inbound-rtp")
        expected += outbound.packetsSent if outbound else 0
        if remote is not None:
            lost += max(remote.packetsLost, 0)
            round_trip_time_s = max(round_trip_time_s, remote.roundTripTime or 0.0)
    return StreamCounters(
        expected=expected,
        lost=lost,
        bytes=sum(media.track.bytes_forwarded for media in subscription.media),
        round_trip_time_s=round_trip_time_s,
    )
