"""The flood guard: rates per window against the ceilings, the aiortc counters it reads, and closing the
flooding peer once with 5009."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from services.core.config import RelaySettings
from services.relay.close_codes import CloseCode
from services.relay.flood_guard import (
    RX_BYTES,
    RX_PACKETS,
    FloodGuard,
    FloodLimits,
    FloodMeter,
    received_totals,
)
from services.relay.ice import IcePolicy
from services.relay.peer import Peer

LIMITS = FloodLimits(max_packets_per_s=1000, max_bitrate_bps=8_000_000, window_s=2.0)


def test_defaults_sit_well_above_a_1080p60_stream() -> None:
    limits = FloodLimits.of(RelaySettings())
    assert (limits.max_packets_per_s, limits.max_bitrate_bps, limits.window_s) == (3000, 20_000_000, 2.0)


@pytest.mark.parametrize(
    ("packets", "received", "flooded"),
    [
        (2000, 1_000_000, False),  # exactly 1000 packets/s, 4 Mbit/s: at the ceiling, not over it
        (2002, 1_000_000, True),  # packets/s over
        (200, 2_000_001, True),  # bitrate over (8 Mbit/s + a little) with few, large packets
        (0, 0, False),
    ],
)
def test_a_window_over_either_ceiling_is_a_flood(packets: int, received: int, flooded: bool) -> None:
    meter = FloodMeter(LIMITS, (10, 5000), now=100.0)
    flood = meter.sample((10 + packets, 5000 + received), now=102.0)
    assert (flood is not None) == flooded
    if flood is not None:
        assert flood.packets_per_s == pytest.approx(packets / 2)
        assert flood.bitrate_bps == pytest.approx(received * 8 / 2)


def test_each_window_is_judged_on_its_own() -> None:
    meter = FloodMeter(LIMITS, (0, 0), now=0.0)
    assert meter.sample((5000, 100), now=2.0) is not None
    assert meter.sample((5100, 200), now=4.0) is None  # the burst is over: 50 packets/s


async def test_the_counters_read_exist_in_the_installed_aiortc() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    transport = pc.getTransceivers()[0].receiver.transport
    assert hasattr(transport, RX_PACKETS) and hasattr(transport, RX_BYTES)
    setattr(transport, RX_PACKETS, 7)
    setattr(transport, RX_BYTES, 700)
    # Unbundled (before negotiation) each transceiver has its own transport; the second counts nothing.
    assert received_totals(pc) == (7, 700)
    await pc.close()


def loopback_peer() -> Peer:
    return Peer(
        IcePolicy(RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"])),
        connect_timeout_s=30,
    )


class Counters:
    """Running totals that grow by `per_read` on every read, as a peer's transports would."""

    def __init__(self, per_read: tuple[int, int]) -> None:
        self.per_read = per_read
        self.totals = (0, 0)
        self.reads = 0

    def __call__(self, pc: RTCPeerConnection) -> tuple[int, int]:
        self.reads += 1
        self.totals = (self.totals[0] + self.per_read[0], self.totals[1] + self.per_read[1])
        return self.totals


async def wait_for(condition: object, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_flooding_peer_is_closed_once_with_5009() -> None:
    peer = loopback_peer()
    codes: list[CloseCode] = []
    peer.on_closed(codes.append)
    limits = FloodLimits(max_packets_per_s=1000, max_bitrate_bps=8_000_000, window_s=0.05)
    # 1000 packets per read, a read per 50 ms window: about 20,000 packets/s.
    FloodGuard(peer, limits, totals=Counters((1000, 1000)), feed_id="f").start()
    await wait_for(lambda: codes)
    await asyncio.sleep(0.2)
    assert codes == [CloseCode.FLOODED] and int(codes[0]) == 5009


async def test_a_peer_within_the_ceilings_is_left_alone_and_the_guard_ends_with_it() -> None:
    peer = loopback_peer()
    limits = FloodLimits(max_packets_per_s=1000, max_bitrate_bps=8_000_000, window_s=0.02)
    counters = Counters((1, 100))  # at most 50 packets/s even if windows ran at their nominal length
    FloodGuard(peer, limits, totals=counters).start()
    await wait_for(lambda: counters.reads >= 10)
    assert peer.close_code is None
    await peer.close(CloseCode.STOPPED)
    reads = counters.reads
    await asyncio.sleep(0.1)
    assert peer.close_code == CloseCode.STOPPED and counters.reads == reads
