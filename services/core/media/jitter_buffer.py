"""A video jitter buffer that hands a frame over as soon as it is complete.

aiortc's `JitterBuffer` knows a frame is complete only when a packet of the *next* frame arrives (a
different RTP timestamp), so every forwarded video frame would wait one frame interval (33 ms at 30 fps)
in the relay. VP8 (RFC 7741 4.1) and H.264 (RFC 6184 5.1) senders set the RTP marker bit on the last
packet of a frame; `MarkerJitterBuffer` releases a frame when the packets from its first one (the buffer's
origin) through the one carrying the marker are all present, whichever of them arrives last.

Everything else is the stock buffer's, inherited unchanged: the same capacity and origin, dropping late
packets from before the origin, and when a gap is never filled (NACK and RTX failed) the stock way of
skipping frames to make room, which also raises the PLI flag the receiver turns into a key frame request.
A frame whose marker packet is lost is still ended the stock way, by the next frame's first packet.

Like the stock buffer it releases at most one frame per packet added; after a gap is filled, a frame that
completed behind it goes out with the next packet.

A released frame also carries the RTP payloads it arrived in (`PacketizedFrame.payloads`), in order, so a
relay can forward the publisher's own packetization instead of cutting the frame up again. They are a
valid packetization of the frame: the buffer releases only a run of consecutive sequence numbers of one
timestamp, every packet of the frame.
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

# aiortc's video receiver buffer (RTCRtpReceiver.__init__): 512 packets, a power of two.
VIDEO_CAPACITY = 512


class PacketizedFrame(JitterFrame):
    """A frame with the RTP payloads it came in (padding-only packets left out)."""

    def __init__(self, data: bytes, timestamp: int, payloads: list[bytes]) -> None:
        super().__init__(data=data, timestamp=timestamp)
        self.payloads = payloads


class MarkerJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int = VIDEO_CAPACITY) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=True)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        packets: list[RtpPacket] = []
        timestamp: int | None = None
        for count in range(self._capacity):
            packet = self._packets[(origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # The frame's marker packet never came: the next frame's first packet ends it (stock rule).
                return self._release(packets, timestamp)
            packets.append(packet)
            if packet.marker:
                return self._release(packets, timestamp)
        return None

    def _release(self, packets: list[RtpPacket], timestamp: int) -> PacketizedFrame:
        self.remove(len(packets))
        return PacketizedFrame(
            # `_data` is the depayloaded payload the receiver attaches to each packet before adding it.
            data=b"".join(packet._data for packet in packets),  # type: ignore[attr-defined]
            timestamp=timestamp,
            payloads=[packet.payload for packet in packets if packet.payload],
        )
