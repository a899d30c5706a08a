"""The relay's RTP writer lays out each packet byte for byte as aiortc's `RtpPacket.serialize` would, with
one send time per frame, and keeps what it sent for retransmissions."""

from __future__ import annotations

import pytest
from aiortc import clock
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket

from services.relay.rtp_writer import RtpStreamWriter, abs_send_time, ntp_now

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SSRC = 0xDEADBEEF
PAYLOAD_TYPE = 97
NTP = (3_970_000_000 << 32) | 0x8000_0000


def extensions_map(*uris: str) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpSendParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i + 1, uri=uri) for i, uri in enumerate(uris)
            ]
        )
    )
    return extensions


def as_aiortc_writes_it(
    extensions: HeaderExtensionsMap,
    payload: bytes,
    sequence_number: int,
    marker: int,
    mid: str | None,
    ntp: int = NTP,
) -> bytes:
    packet = RtpPacket(payload_type=PAYLOAD_TYPE, marker=marker, sequence_number=sequence_number)
    packet.timestamp, packet.ssrc, packet.payload = 123456, SSRC, payload
    packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
    packet.extensions.mid = mid
    return packet.serialize(extensions)


def test_packets_are_the_bytes_aiortc_writes_with_the_marker_on_the_last() -> None:
    extensions = extensions_map(MID, ABS_SEND_TIME)
    writer = RtpStreamWriter(SSRC, PAYLOAD_TYPE, extensions, "1")
    payloads = [b"\x10first", b"\x00middle", b"\x00last"]
    packets = writer.frame(payloads, 123456, 65534, NTP)
    expected = [
        as_aiortc_writes_it(extensions, payload, sequence_number, marker, "1")
        for payload, sequence_number, marker in zip(payloads, [65534, 65535, 0], [0, 0, 1], strict=True)
    ]
    assert packets == expected
    parsed = [RtpPacket.parse(packet, extensions) for packet in packets]
    assert [(p.sequence_number, p.marker, p.extensions.mid) for p in parsed] == [
        (65534, 0, "1"),
        (65535, 0, "1"),
        (0, 1, "1"),
    ]
    assert parsed[0].extensions.abs_send_time == abs_send_time(NTP)


@pytest.mark.parametrize(
    ("uris", "mid"),
    [((MID, ABS_SEND_TIME), "1"), ((ABS_SEND_TIME, MID), "audio"), ((ABS_SEND_TIME,), None), ((MID,), "0")],
    ids=["mid-first", "send-time-first", "send-time-only", "mid-only"],
)
def test_each_frames_send_time_is_written_where_aiortc_writes_it(
    uris: tuple[str, ...], mid: str | None
) -> None:
    extensions = extensions_map(*uris)
    writer = RtpStreamWriter(SSRC, PAYLOAD_TYPE, extensions, mid)
    for ntp in (0, NTP, (1 << 64) - 1, NTP + (0x5A5A5A << 14)):
        assert writer.frame([b"frame"], 123456, 9, ntp) == [
            as_aiortc_writes_it(extensions, b"frame", 9, 1, mid, ntp)
        ]


def test_without_negotiated_extensions_there_is_no_extension_header() -> None:
    extensions = extensions_map()
    packets = RtpStreamWriter(SSRC, PAYLOAD_TYPE, extensions, "0").frame([b"opus"], 123456, 7, NTP)
    assert packets == [as_aiortc_writes_it(extensions, b"opus", 7, 1, "0")]
    assert packets[0][0] & 0x10 == 0


def test_sent_packets_are_kept_until_the_history_wraps() -> None:
    writer = RtpStreamWriter(SSRC, PAYLOAD_TYPE, extensions_map(MID), "1")
    first = writer.frame([b"a", b"b"], 0, 100, NTP)
    assert (writer.sent(100), writer.sent(101), writer.sent(102)) == (first[0], first[1], None)
    writer.frame([b"x"] * RTP_HISTORY_SIZE, 3000, 102, NTP)
    assert writer.sent(100) is None and writer.sent(100 + RTP_HISTORY_SIZE) is not None


def test_the_send_time_is_the_ntp_clock_aiortc_reads() -> None:
    before = clock.current_ntp_time()
    now = ntp_now()
    after = clock.current_ntp_time()
    # datetime has microseconds: aiortc's reading may round below ours by up to one.
    assert before - (1 << 32) // 1_000_000 <= now <= after + (1 << 32) // 1_000_000
    assert abs_send_time(now) == (now >> 14) & 0xFFFFFF < 1 << 24
