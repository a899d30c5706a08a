"""RTP packets of one outgoing stream, written as bytes with one clock reading per frame.

aiortc's sender builds an `RtpPacket` object per packet, reads the clock twice per packet (a `datetime`
turned into NTP time, for the abs-send-time extension and for the sender report) and lays out the header
extensions again for every packet. A forwarded frame's packets leave back to back, so the relay writes
the extensions once per frame, and packs each packet's fixed header with one `struct` call. The
extension block is laid out once per stream with aiortc's own `HeaderExtensionsMap` (so the bytes are the
ones aiortc would write); per frame only the 3 bytes of abs-send-time change in it, so a frame's block is
the template with those spliced in, not a `HeaderExtensions` laid out again. The packets sent are
kept, as bytes, for the retransmissions a subscriber's NACKs ask for, as many as aiortc keeps.
"""

from __future__ import annotations

import struct
import time

from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap

# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800
RTP_VERSION_BITS = 0x80
EXTENSION_BIT = 0x10
MARKER_BIT = 0x80
FIXED_HEADER = struct.Struct("!BBHLL")
EXTENSION_HEADER = struct.Struct("!HH")


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (32.32 fixed point), from integer nanoseconds."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return ((seconds + NTP_UNIX_OFFSET) << 32) | ((nanoseconds << 32) // 1_000_000_000)


def abs_send_time(ntp: int) -> int:
    """The abs-send-time extension's 24 bits: seconds in 6.18 fixed point, as aiortc computes it."""
    return (ntp >> 14) & 0x00FFFFFF


class RtpStreamWriter:
    def __init__(
        self, ssrc: int, payload_type: int, extensions: HeaderExtensionsMap, mid: str | None
    ) -> None:
        self._ssrc = ssrc
        self._payload_type = payload_type
        self._extensions = extensions
        self._mid = mid
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE
        self._first_byte, self._before_send_time, self._after_send_time = self._extension_template()

    def _extension_template(self) -> tuple[int, bytes, bytes | None]:
        """The first header byte and the extension block around its abs-send-time (None after it: no
        abs-send-time negotiated, the block is all there is)."""
        blocks = []
        for send_time in (0, 0xFFFFFF):
            profile, value = self._extensions.set(HeaderExtensions(mid=self._mid, abs_send_time=send_time))
            blocks.append(EXTENSION_HEADER.pack(profile, len(value) >> 2) + value if value else b"")
        zeros, ones = blocks
        if not zeros:
            return RTP_VERSION_BITS, b"", None
        if zeros == ones:
            return RTP_VERSION_BITS | EXTENSION_BIT, zeros, None
        # The two layouts differ only in the 3 abs-send-time bytes, all 0 in one and all 1 in the other.
        start = next(index for index, (zero, one) in enumerate(zip(zeros, ones, strict=True)) if zero != one)
        return RTP_VERSION_BITS | EXTENSION_BIT, zeros[:start], zeros[start + 3 :]

    def frame(
        self, payloads: list[bytes], timestamp: int, first_sequence_number: int, ntp: int
    ) -> list[bytes]:
        """The packets of one frame: consecutive sequence numbers from `first_sequence_number` (mod 2^16),
        the marker bit on the last, the frame's send time in abs-send-time."""
        first_byte = self._first_byte
        extension = self._before_send_time
        if self._after_send_time is not None:
            extension += abs_send_time(ntp).to_bytes(3, "big") + self._after_send_time
        pack = FIXED_HEADER.pack
        history = self._history
        ssrc = self._ssrc
        payload_type = self._payload_type
        last = len(payloads) - 1
        packets = []
        sequence_number = first_sequence_number
        for index, payload in enumerate(payloads):
            second_byte = payload_type | MARKER_BIT if index == last else payload_type
            packet = pack(first_byte, second_byte, sequence_number, timestamp, ssrc) + extension + payload
            history[sequence_number % RTP_HISTORY_SIZE] = packet
            packets.append(packet)
            sequence_number = (sequence_number + 1) & 0xFFFF
        return packets

    def sent(self, sequence_number: int) -> bytes | None:
        """The packet sent with this sequence number, if it is still in the history."""
        packet = self._history[sequence_number % RTP_HISTORY_SIZE]
        if packet is None or int.from_bytes(packet[2:4], "big") != sequence_number:
            return None
        return packet
