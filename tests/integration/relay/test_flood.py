"""A publisher that floods the relay with RTP is closed alone (5009), its subscribers see its feed stop,
and another feed in the same room keeps forwarding to its subscriber."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import structlog
from aiortc.rtp import RtpPacket
from parley.relay.v1 import relay_pb2_grpc
from relay_clients import Publisher, Subscriber, publish, subscribe, wait_until

from services.core.config import ServiceName
from services.relay.close_codes import CloseCode
from services.relay.relay import Relay
from tests.testing import start_platform

pytestmark = pytest.mark.integration

# Ceilings far below the defaults, so the flood a test client can send on this shared machine is well over
# them while a test feed (320x240 VP8 + Opus, about 100 packets/s with RTCP) stays well under.
MAX_PACKETS_PER_S = 600
WINDOW_S = 1.0
# Sent by the flooder every FLOOD_TICK_S: about 3000 packets/s if the machine keeps up.
FLOOD_BURST = 60
FLOOD_TICK_S = 0.02
# A payload type neither side negotiated: the relay's transport counts and decrypts each packet and then
# drops it, so the flood costs the relay CPU without sending garbage frames to the flooded feed's subscriber.
UNNEGOTIATED_PAYLOAD_TYPE = 77


@pytest.fixture(scope="module")
async def flood_relay(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Relay, relay_pb2_grpc.RelayServiceStub]]:
    flood_limits = {"flood_max_packets_per_s": MAX_PACKETS_PER_S, "flood_window_s": WINDOW_S}
    async with start_platform(
        tmp_path_factory.mktemp("relay-flood"), ServiceName.RELAY, settings={"relay": flood_limits}
    ) as platform:
        yield platform["relay"].built, platform.stub(relay_pb2_grpc.RelayServiceStub, ServiceName.RELAY)


async def flood(publisher: Publisher, stop: asyncio.Event) -> int:
    """Send SRTP packets over the publisher's own DTLS transport until `stop`; return how many."""
    transport = publisher.pc.getTransceivers()[0].sender.transport
    sent = 0
    while not stop.is_set() and transport.state == "connected":
        for _ in range(FLOOD_BURST):
            packet = RtpPacket(
                payload_type=UNNEGOTIATED_PAYLOAD_TYPE,
                sequence_number=sent % 65536,
                timestamp=sent,
                ssrc=0x0BADF00D,
                payload=b"\x00" * 1000,
            )
            await transport._send_rtp(packet.serialize())
            sent += 1
        await asyncio.sleep(FLOOD_TICK_S)
    return sent


async def test_a_flooding_publisher_is_closed_alone_and_the_other_feed_keeps_forwarding(flood_relay) -> None:
    relay, stub = flood_relay
    room_id = f"room-{uuid.uuid4()}"
    calm, flooder = Publisher(), Publisher()
    calm_watcher, flood_watcher = Subscriber(), Subscriber()
    stop_flood = asyncio.Event()
    flooding: asyncio.Task[int] | None = None
    try:
        await publish(stub, calm, room_id=room_id, feed_id="calm", uid="alice")
        await publish(stub, flooder, room_id=room_id, feed_id="loud", uid="mallory")
        await subscribe(stub, calm_watcher, room_id=room_id, feed_id="calm", uid="bob")
        await subscribe(stub, flood_watcher, room_id=room_id, feed_id="loud", uid="carol")
        await wait_until(
            lambda: (
                len(calm_watcher.received.video_frames) >= 10
                and len(flood_watcher.received.video_frames) >= 10
            )
        )
        # Both feeds ran for several windows under the ceiling without being touched.
        assert {"calm", "loud"} <= {feed_id for (room, feed_id) in relay.feeds if room == room_id}
        loud = relay.feed(room_id, "loud")

        with structlog.testing.capture_logs() as logs:
            flooding = asyncio.create_task(flood(flooder, stop_flood))
            await wait_until(lambda: loud.peer.close_code is not None, timeout_s=30)
            frames_at_close = len(calm_watcher.received.video_frames)
            stop_flood.set()
            sent = await flooding
            # The calm feed goes on: its subscriber keeps decoding frames.
            await wait_until(lambda: len(calm_watcher.received.video_frames) >= frames_at_close + 30)

        assert loud.peer.close_code == CloseCode.FLOODED and int(loud.peer.close_code) == 5009
        assert sent > MAX_PACKETS_PER_S * WINDOW_S
        flooded = [entry for entry in logs if entry["event"] == "publication_flooded"]
        assert len(flooded) == 1
        assert flooded[0]["feed_id"] == "loud" and flooded[0]["packets_per_s"] > MAX_PACKETS_PER_S
        # The flooded feed's subscriber sees its feed stop; the calm feed and its subscription stay.
        await wait_until(lambda: flood_watcher.received.ended == {"audio", "video"})
        assert (room_id, "loud") not in relay.feeds
        calm_feed = relay.feed(room_id, "calm")
        assert calm_feed.peer.close_code is None
        assert [s.uid for s in relay.subscriptions.values() if s.feed is calm_feed] == ["bob"]
        assert not calm_watcher.received.ended
    finally:
        stop_flood.set()
        if flooding is not None:
            await asyncio.gather(flooding, return_exceptions=True)
        for peer in (calm, flooder, calm_watcher, flood_watcher):
            await peer.close()
