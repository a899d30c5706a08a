"""What the relay reports to the room manager (services/relay/room_reports.py), seen at the relay's side:
every stream it closes on its own, with its code, and none the room manager ordered; weak streams from
real receiver statistics. The relay runs in this test's loop with a recording sink in place of the room
manager (the room manager's side: tests/integration/rooms/test_media_stream_control.py), and real
aiortc clients on loopback."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast

import pytest
from relay_clients import BIZ_NAME, ClientPeer, Publisher, Subscriber, wait_until

from services.core.config import RelaySettings
from services.core.events import EventPublisher
from services.relay.metering import MeteringTicker
from services.relay.quality import QualityWatch, WeakRules
from services.relay.relay import PublishOrder, Relay, SubscribeOrder
from services.relay.room_reports import StreamRef, WeakNetwork

pytestmark = pytest.mark.integration

SETTINGS = RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"])


class Recorded:
    def __init__(self) -> None:
        self.closed: list[tuple[StreamRef, int]] = []
        self.weak: list[tuple[StreamRef, WeakNetwork]] = []

    def stream_closed(self, stream: StreamRef, code: int) -> None:
        self.closed.append((stream, code))

    def network_weak(self, stream: StreamRef, weak: WeakNetwork) -> None:
        self.weak.append((stream, weak))


@pytest.fixture
async def relay_and_reports() -> tuple[Relay, Recorded]:
    reports = Recorded()
    # Not started: ticks stay in its outbox, which this test does not read.
    ticker = MeteringTicker(cast(EventPublisher, None), interval_s=60)
    return Relay(SETTINGS, ticker, reports), reports


async def publish(relay: Relay, room_id: str, feed_id: str, publisher: ClientPeer) -> None:
    _, answer = await relay.publish(
        PublishOrder(BIZ_NAME, room_id, "alice", feed_id, await publisher.offer())
    )
    await publisher.accept(answer)


async def subscribe(relay: Relay, room_id: str, feed_id: str, uid: str, subscriber: Subscriber) -> str:
    subscription, answer = await relay.subscribe(
        SubscribeOrder(BIZ_NAME, room_id, uid, feed_id, await subscriber.offer(), audio=True, video=True)
    )
    await subscriber.accept(answer)
    await wait_until(lambda: len(subscriber.received.video_frames) > 5)
    return subscription.subscription_id


async def test_closes_the_room_manager_ordered_are_not_reported_and_the_others_are(
    relay_and_reports: tuple[Relay, Recorded],
) -> None:
    relay, reports = relay_and_reports
    room_id = f"room-{uuid.uuid4()}"
    peers: list[ClientPeer] = []
    try:
        # Unsubscribe and unpublish, as the room manager orders them: nothing to report.
        publisher, subscriber, other = Publisher(), Subscriber(), Subscriber()
        peers += [publisher, subscriber, other]
        await publish(relay, room_id, "ordered", publisher)
        subscription_id = await subscribe(relay, room_id, "ordered", "bob", subscriber)
        await relay.unsubscribe(room_id, subscription_id)
        await subscribe(relay, room_id, "ordered", "carol", other)
        await relay.unpublish(room_id, "ordered")
        assert reports.closed == []

        # Clients that go away: their streams close with 5007, and the subscriptions of a feed that
        # closed (5006) are left to the room manager, which hears of the feed.
        publisher, watcher, quitter = Publisher(), Subscriber(), Subscriber()
        peers += [publisher, watcher, quitter]
        await publish(relay, room_id, "cam", publisher)
        await subscribe(relay, room_id, "cam", "bob", watcher)
        quitting = await subscribe(relay, room_id, "cam", "dave", quitter)
        await quitter.close()
        await wait_until(lambda: len(reports.closed) == 1)
        assert reports.closed == [(StreamRef(room_id, "cam", "dave", quitting), 5007)]
        await publisher.close()
        await wait_until(lambda: len(reports.closed) == 2)
        assert reports.closed[1] == (StreamRef(room_id, "cam", "alice"), 5007)
        await wait_until(lambda: not relay.subscriptions)

        # The relay stops: everything left closes with 5009, and is reported.
        publisher, watcher = Publisher(), Subscriber()
        peers += [publisher, watcher]
        await publish(relay, room_id, "last", publisher)
        last = await subscribe(relay, room_id, "last", "bob", watcher)
        reports.closed.clear()
        await relay.close()
        assert reports.closed == [
            (StreamRef(room_id, "last", "bob", last), 5009),
            (StreamRef(room_id, "last", "alice"), 5009),
        ]
    finally:
        await relay.close()
        for peer in peers:
            await peer.close()


async def test_a_publisher_losing_packets_is_judged_weak_from_the_receivers_counts(
    relay_and_reports: tuple[Relay, Recorded],
) -> None:
    relay, reports = relay_and_reports
    room_id = f"room-{uuid.uuid4()}"
    publisher, healthy = Publisher(), Publisher()
    # One window per check() here; a weak stream is reported once.
    rules = WeakRules(window_s=1, loss_fraction=0.1, round_trip_time_s=1, report_interval_s=60)
    watch = QualityWatch(relay, reports, rules)
    try:
        await publish(relay, room_id, "lossy", publisher)
        await publish(relay, room_id, "healthy", healthy)
        await wait_until(lambda: all(f.peer.connected for f in relay.feeds.values()))
        # Every other packet the lossy publisher sends is lost on the way.
        transport = publisher.pc.getTransceivers()[0].sender.transport
        send, sent = transport._send_rtp, [0]

        async def lossy(data: bytes) -> None:
            sent[0] += 1
            if sent[0] % 2:
                await send(data)

        transport._send_rtp = lossy
        await watch.check()  # starts every stream's first window
        async with asyncio.timeout(20):
            while not reports.weak:
                await asyncio.sleep(1)
                await watch.check()
        assert [stream.feed_id for stream, _ in reports.weak] == ["lossy"]
        weak = reports.weak[0][1]
        assert weak.loss >= 0.1 and weak.bps_send > 0 and weak.bps_recv == 0
    finally:
        await relay.close()
        await publisher.close()
        await healthy.close()
