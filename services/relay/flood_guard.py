"""Closes a publication that floods the relay with packets, alone, before it starves the other streams.

The relay forwards whatever a publisher sends to every subscriber, so one publisher sending far more than
any real camera (a bug, or an attack with valid credentials) costs CPU for every stream on the relay. A
`FloodGuard` watches one publisher's peer connection: it reads, once per window, the counters aiortc's
DTLS transport already keeps for every datagram it receives (media, RTCP, DTLS, and packets whose SRTP
check fails alike), so the media path pays nothing extra per packet. When the rate over a whole window
exceeds either ceiling, the guard logs it once and closes that peer with 5009 (seed 002 section 6.3.4,
"媒体服务器通过信令通道发出关闭指令", closed by the media server); the feed's subscribers then see their
feed stop (5006) as for any other end of a feed, and every other stream goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiortc import RTCPeerConnection

from services.core.config import RelaySettings
from services.relay.close_codes import CloseCode
from services.relay.peer import Peer

log = structlog.get_logger(__name__)

# aiortc 1.16 `RTCDtlsTransport` counts every datagram it reads (tests/unit/relay/test_flood_guard.py).
RX_PACKETS = "_RTCDtlsTransport__rx_packets"
RX_BYTES = "_RTCDtlsTransport__rx_bytes"


@dataclass(frozen=True)
class FloodLimits:
    max_packets_per_s: float
    max_bitrate_bps: float
    window_s: float

    @classmethod
    def of(cls, settings: RelaySettings) -> FloodLimits:
        return cls(
            max_packets_per_s=settings.flood_max_packets_per_s,
            max_bitrate_bps=settings.flood_max_bitrate_bps,
            window_s=settings.flood_window_s,
        )


@dataclass(frozen=True)
class Flood:
    packets_per_s: float
    bitrate_bps: float


def received_totals(pc: RTCPeerConnection) -> tuple[int, int]:
    """Datagrams and bytes received so far over all of `pc`'s DTLS transports (one when bundled)."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    packets = sum(getattr(transport, RX_PACKETS) for transport in transports.values())
    received = sum(getattr(transport, RX_BYTES) for transport in transports.values())
    return packets, received


class FloodMeter:
    """The rate decision, apart from timers: `sample` once per window with running totals."""

    def __init__(self, limits: FloodLimits, totals: tuple[int, int], now: float) -> None:
        self._limits = limits
        self._last = (totals, now)

    def sample(self, totals: tuple[int, int], now: float) -> Flood | None:
        """The rates since the previous sample if either is over its ceiling, else None."""
        (last_packets, last_bytes), last_time = self._last
        self._last = (totals, now)
        elapsed = now - last_time
        if elapsed <= 0:
            return None
        packets_per_s = (totals[0] - last_packets) / elapsed
        bitrate_bps = 8 * (totals[1] - last_bytes) / elapsed
        if packets_per_s > self._limits.max_packets_per_s or bitrate_bps > self._limits.max_bitrate_bps:
            return Flood(packets_per_s=packets_per_s, bitrate_bps=bitrate_bps)
        return None


class FloodGuard:
    """Watches one publisher's peer from `start` until it closes (see the module docstring)."""

    def __init__(
        self,
        peer: Peer,
        limits: FloodLimits,
        *,
        totals: Callable[[RTCPeerConnection], tuple[int, int]] = received_totals,
        **log_context: str,
    ) -> None:
        self._peer = peer
        self._limits = limits
        self._totals = totals
        self._log_context = log_context
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="flood-guard")
        self._peer.on_closed(lambda code: self._stop())

    def _stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        meter = FloodMeter(self._limits, self._totals(self._peer.pc), loop.time())
        while self._peer.close_code is None:
            await asyncio.sleep(self._limits.window_s)
            flood = meter.sample(self._totals(self._peer.pc), loop.time())
            if flood is not None and self._peer.close_code is None:
                log.warning(
                    "publication_flooded",
                    packets_per_s=round(flood.packets_per_s),
                    bitrate_bps=round(flood.bitrate_bps),
                    max_packets_per_s=self._limits.max_packets_per_s,
                    max_bitrate_bps=self._limits.max_bitrate_bps,
                    **self._log_context,
                )
                await self._peer.close(CloseCode.FLOODED)
                return
