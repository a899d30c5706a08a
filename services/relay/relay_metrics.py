"""The relay's Prometheus metrics: streams, media bytes, RTP packets and their loss.

Bytes come from the metering ticks (every stream's bytes, each interval and at its end: none missed).
Packets and loss come from the RTP statistics the relay already keeps per live stream, read at each scrape;
the increase since the previous scrape is added to the counters, so a stream's last packets before it
ends, after the last scrape, are not counted (at most one scrape interval of one stream).
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.relay.v1 import media_pb2, metering_pb2

from services.core.metrics import ServiceMetrics
from services.relay.relay import Relay
from services.relay.stats import StreamCounters, publication_counters, subscription_counters

RECEIVED = "received"
FORWARDED = "forwarded"


@dataclass
class _Seen:
    expected: int = 0
    lost: int = 0


class RelayMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._bytes = metrics.counter(
            "parley_relay_media_bytes",
            "Encoded media bytes received from publishers and forwarded to subscribers",
            ["direction", "kind"],
        )
        self._packets = metrics.counter(
            "parley_relay_packets",
            "RTP packets expected from publishers (received + lost) and sent to subscribers",
            ["direction"],
        )
        self._lost = metrics.counter(
            "parley_relay_packets_lost",
            "RTP packets lost from publishers, and lost on the way to subscribers (their receiver reports)",
            ["direction"],
        )
        self._seen: dict[str, _Seen] = {}

    def watch(self, relay: Relay) -> None:
        """Count `relay`'s streams (the metering ticker, made before the relay, counts bytes from start)."""
        self._metrics.gauge(
            "parley_relay_publications", "Published feeds on this relay", lambda: len(relay.feeds)
        )
        self._metrics.gauge(
            "parley_relay_subscriptions",
            "Subscriptions this relay forwards",
            lambda: len(relay.subscriptions),
        )
        self._metrics.on_scrape(lambda: self.refresh(relay))

    def ticked(self, tick: metering_pb2.MeteringTick) -> None:
        direction = RECEIVED if tick.role == metering_pb2.STREAM_ROLE_PUBLICATION else FORWARDED
        kind = "audio" if tick.kind == media_pb2.MEDIA_KIND_AUDIO else "video"
        self._bytes.labels(direction, kind).inc(tick.bytes)

    async def refresh(self, relay: Relay) -> None:
        live: set[str] = set()
        for feed in list(relay.feeds.values()):
            live.add(feed.publication_id)
            self._add(feed.publication_id, RECEIVED, await publication_counters(feed))
        for subscription in list(relay.subscriptions.values()):
            live.add(subscription.subscription_id)
            self._add(subscription.subscription_id, FORWARDED, await subscription_counters(subscription))
        for gone in self._seen.keys() - live:
            del self._seen[gone]

    def _add(self, stream_id: str, direction: str, counters: StreamCounters) -> None:
        seen = self._seen.setdefault(stream_id, _Seen())
        # Receiver reports may revise loss down (a late packet); counters only go up.
        if counters.expected > seen.expected:
            self._packets.labels(direction).inc(counters.expected - seen.expected)
            seen.expected = counters.expected
        if counters.lost > seen.lost:
            self._lost.labels(direction).inc(counters.lost - seen.lost)
            seen.lost = counters.lost
