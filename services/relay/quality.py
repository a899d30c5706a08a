"""`on_network_weak` (seed 002 OnNetworkWeak): the relay judges every connected stream once a window from
the RTP statistics it already has, and reports a weak one to the room manager, at most once per interval.

- A publication: the relay's receiver counts the publisher's packets received and lost (sequence gaps
  the stock receiver's NACKs did not fill); loss = lost / expected over the window.
- A subscription: the subscriber's RTCP receiver reports give its cumulative loss and, with the relay's
  sender reports, the round-trip time; loss = lost / sent over the window.

A stream is weak when its loss over the window reaches `weak_loss_fraction`, or its round-trip time
reaches `weak_rtt_s`. A window with fewer than `MIN_PACKETS` expected packets is not judged (a muted or
paused stream, an audio-only trickle): too few packets say nothing about the network. Bitrate alone is
not a criterion: a static picture or a paused track lowers it as much as a congested link does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from services.core.config import RelaySettings
from services.relay.relay import Relay
from services.relay.room_reports import StreamRef, StreamReports, WeakNetwork
from services.relay.stats import StreamCounters, publication_counters, subscription_counters

log = structlog.get_logger(__name__)

MIN_PACKETS = 20


@dataclass(frozen=True)
class WeakRules:
    window_s: float
    loss_fraction: float
    round_trip_time_s: float
    report_interval_s: float

    @classmethod
    def of(cls, settings: RelaySettings) -> WeakRules:
        return cls(
            window_s=settings.weak_window_s,
            loss_fraction=settings.weak_loss_fraction,
            round_trip_time_s=settings.weak_rtt_s,
            report_interval_s=settings.weak_report_interval_s,
        )


@dataclass(frozen=True)
class Verdict:
    """A weak window: its loss, round-trip time and bitrate (bits per second of encoded media)."""

    loss: float
    round_trip_time_s: float
    bps: int


class StreamJudge:
    """Judges one stream window by window from its running totals, and says when a weak one is to be
    reported (not twice within the report interval)."""

    def __init__(self, rules: WeakRules) -> None:
        self._rules = rules
        self._last: tuple[float, StreamCounters] | None = None
        self._reported_at: float | None = None

    def judge(self, at: float, counters: StreamCounters) -> Verdict | None:
        previous, self._last = self._last, (at, counters)
        if previous is None:
            return None
        since, before = previous
        elapsed = at - since
        expected = counters.expected - before.expected
        if elapsed <= 0 or expected < MIN_PACKETS:
            return None
        loss = min(max(counters.lost - before.lost, 0) / expected, 1.0)
        rtt = counters.round_trip_time_s
        if loss < self._rules.loss_fraction and rtt < self._rules.round_trip_time_s:
            return None
        if self._reported_at is not None and at - self._reported_at < self._rules.report_interval_s:
            return None
        self._reported_at = at
        return Verdict(
            loss=loss, round_trip_time_s=rtt, bps=int((counters.bytes - before.bytes) * 8 / elapsed)
        )


class QualityWatch:
    def __init__(
        self,
        relay: Relay,
        reports: StreamReports,
        rules: WeakRules,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relay = relay
        self._reports = reports
        self._rules = rules
        self._clock = clock
        # By publication or subscription id; a stream that ends is forgotten at the next round.
        self._judges: dict[str, StreamJudge] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-quality-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> None:
        """One round over every connected stream."""
        live: set[str] = set()
        for feed in list(self._relay.feeds.values()):
            if not feed.peer.connected or feed.peer.close_code is not None:
                continue
            live.add(feed.publication_id)
            verdict = self._judge(feed.publication_id, await publication_counters(feed))
            if verdict is not None:
                self._report(StreamRef(feed.room_id, feed.feed_id, feed.uid), verdict, sending=True)
        for subscription in list(self._relay.subscriptions.values()):
            if not subscription.peer.connected or subscription.peer.close_code is not None:
                continue
            live.add(subscription.subscription_id)
            verdict = self._judge(subscription.subscription_id, await subscription_counters(subscription))
            if verdict is not None:
                stream = StreamRef(
                    subscription.room_id,
                    subscription.feed.feed_id,
                    subscription.uid,
                    subscription.subscription_id,
                )
                self._report(stream, verdict, sending=False)
        for gone in self._judges.keys() - live:
            del self._judges[gone]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._rules.window_s)
            try:
                await self.check()
            except Exception:
                log.exception("quality_check_failed")

    def _judge(self, stream_id: str, counters: StreamCounters) -> Verdict | None:
        judge = self._judges.get(stream_id)
        if judge is None:
            judge = self._judges[stream_id] = StreamJudge(self._rules)
        return judge.judge(self._clock(), counters)

    def _report(self, stream: StreamRef, verdict: Verdict, *, sending: bool) -> None:
        # The owner's view: a publisher sends what the relay received, a subscriber receives what the
        # relay forwarded.
        weak = WeakNetwork(
            bps_send=verdict.bps if sending else 0,
            bps_recv=0 if sending else verdict.bps,
            loss=verdict.loss,
            round_trip_time_s=verdict.round_trip_time_s,
        )
        log.info(
            "network_weak",
            room_id=stream.room_id,
            feed_id=stream.feed_id,
            subscription_id=stream.subscription_id,
            loss=round(verdict.loss, 3),
            rtt_s=round(verdict.round_trip_time_s, 3),
        )
        self._reports.network_weak(stream, weak)
