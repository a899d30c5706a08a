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
        # How far from the origin the last look for a complete frame got: `_scanned` packets from
        # `_scan_origin`, all present, all of timestamp `_scan_timestamp` and none with the marker. The
        # next look starts there instead of at the origin (a frame's packets are looked at once each,
        # not once per packet that arrives after them); moving the origin or storing a packet inside
        # that run starts it at the origin again.
        self._scan_origin: int | None = None
        self._scanned = 0
        self._scan_timestamp: int | None = None

    def remove(self, count: int) -> None:
        self._scan_origin = None
        super().remove(count)

    def smart_remove(self, count: int) -> bool:
        self._scan_origin = None
        return super().smart_remove(count)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        start = 0
        timestamp: int | None = None
        if self._scan_origin == origin and (sequence_number - origin) & 0xFFFF >= self._scanned:
            start, timestamp = self._scanned, self._scan_timestamp
        packets = self._packets
        capacity = self._capacity
        for count in range(start, capacity):
            packet = packets[(origin + count) % capacity]
            if packet is None:
                self._scan_origin, self._scanned, self._scan_timestamp = origin, count, timestamp
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # The frame's marker packet never came: the next frame's first packet ends it (stock rule).
                return self._release(origin, count, timestamp)
            if packet.marker:
                return self._release(origin, count + 1, timestamp)
        return None

    def _release(self, origin: int, count: int, timestamp: int) -> PacketizedFrame:
        capacity = self._capacity
        packets = [self._packets[(origin + index) % capacity] for index in range(count)]
        self.remove(count)
        return PacketizedFrame(
            # `_data` is the depayloaded payload the receiver attaches to each packet before adding it.
            data=b"".join([packet._data for packet in packets]),  # type: ignore[union-attr]
            timestamp=timestamp,
            payloads=[packet.payload for packet in packets if packet.payload],  # type: ignore[union-attr]
        )
