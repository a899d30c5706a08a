"""The relay's own RTP receive path: its parser against aiortc's, and the receiver state it relies on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiortc import RTCRtpReceiver, rtcrtpreceiver
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from services.relay import receive
from services.relay.fast_send import COMPILED
from services.relay.receive import ReceiverPath, RtpParser, rtp_parser

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME),
    RTCRtpHeaderExtensionParameters(id=5, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
]


def extensions_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=EXTENSIONS))
    return extensions


@pytest.fixture(params=[True, False], ids=["compiled", "python"])
def parse_rtp(request: pytest.FixtureRequest) -> RtpParser:
    """The relay's parser, from services.relay._fastsend and in Python: the tests hold for both."""
    if request.param and COMPILED is None:
        pytest.skip("services.relay._fastsend was not built")
    return rtp_parser(COMPILED if request.param else None)


def packet(marker: int = 1, payload: bytes = b"\x10\x02frame", padding: int = 0, csrc: int = 0) -> RtpPacket:
    built = RtpPacket(payload_type=96, marker=marker, sequence_number=65535, timestamp=4_000_000_000, ssrc=77)
    built.payload = payload
    built.padding_size = padding
    built.csrc = list(range(1, csrc + 1))
    built.extensions.mid = "0"
    built.extensions.abs_send_time = 0x123456
    built.extensions.audio_level = (True, 40)
    return built


@pytest.mark.parametrize(
    "sent",
    [packet(), packet(marker=0, padding=7), packet(csrc=2), packet(payload=b"")],
    ids=["plain", "padded", "csrc", "empty"],
)
def test_parse_reads_what_aiortc_reads_of_the_fields_the_relay_uses(
    sent: RtpPacket, parse_rtp: RtpParser
) -> None:
    data = sent.serialize(extensions_map())
    stock = RtpPacket.parse(data, extensions_map())
    parsed, abs_send_time = parse_rtp(data, 3)
    fields = ("version", "marker", "payload_type", "sequence_number", "timestamp", "ssrc", "csrc", "payload")
    assert [getattr(parsed, name) for name in (*fields, "padding_size")] == [
        getattr(stock, name) for name in (*fields, "padding_size")
    ]
    assert abs_send_time == stock.extensions.abs_send_time == 0x123456


def test_without_the_extension_negotiated_there_is_no_send_time(parse_rtp: RtpParser) -> None:
    data = packet().serialize(extensions_map())
    assert parse_rtp(data, None)[1] is None
    assert parse_rtp(RtpPacket(payload_type=96).serialize(), 3)[1] is None


@pytest.mark.parametrize(
    "data",
    [
        bytes(11),
        bytes([0x40, 96]) + bytes(10),
        bytes([0x82, 96]) + bytes(10) + bytes(4),
        bytes([0x90, 96]) + bytes(10) + b"\xbe\xde",
        bytes([0x90, 96]) + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),
        bytes([0x90, 96]) + bytes(10) + b"\xbe\xde\x00\x01" + b"\x3f\x00\x00\x00",
        bytes([0xA0, 96]) + bytes(10) + b"abc\x00",
        bytes([0xA0, 96]) + bytes(10) + b"abc\x09",
    ],
    ids=["short", "version", "csrc", "profile", "extension", "element", "padding-zero", "padding-long"],
)
def test_what_aiortc_refuses_is_refused(data: bytes, parse_rtp: RtpParser) -> None:
    with pytest.raises(ValueError):
        parse_rtp(data, 3)


def two_byte_extensions(*elements: tuple[int, bytes]) -> bytes:
    """An RTP packet with RFC 8285 two-byte header extension elements (aiortc writes one-byte ones)."""
    block = b"".join(bytes([element_id, len(value)]) + value for element_id, value in elements)
    block += bytes(-len(block) % 4)
    header = bytes([0x90, 96]) + bytes(10) + b"\x10\x00" + (len(block) // 4).to_bytes(2, "big")
    return header + block + b"payload"


def test_abs_send_time_is_found_among_two_byte_elements(parse_rtp: RtpParser) -> None:
    data = two_byte_extensions((1, b"mid-value-longer-than-16-bytes"), (3, b"\x12\x34\x56"))
    parsed, abs_send_time = parse_rtp(data, 3)
    assert (abs_send_time, parsed.payload) == (0x123456, b"payload")


@pytest.mark.skipif(COMPILED is None, reason="services.relay._fastsend was not built")
def test_the_compiled_parser_agrees_with_the_python_one_on_damaged_packets() -> None:
    """Every byte of a few packets replaced by a few values, and every length cut: the same packet fields
    or the same error from both."""
    compiled, python = rtp_parser(COMPILED), rtp_parser(None)
    samples = [
        packet().serialize(extensions_map()),
        packet(marker=0, padding=7, csrc=2).serialize(extensions_map()),
        two_byte_extensions((3, b"\x00\x00\x01"), (7, b"")),
    ]
    fields = ("version", "marker", "payload_type", "sequence_number", "timestamp", "ssrc", "csrc")

    def outcome(parse: RtpParser, data: bytes, wanted: int | None) -> object:
        try:
            parsed, abs_send_time = parse(data, wanted)
        except ValueError as error:
            return str(error)
        named = [getattr(parsed, name) for name in (*fields, "payload", "padding_size")]
        return named, parsed.extensions is receive._NO_EXTENSIONS, abs_send_time

    kinds: set[str] = set()
    for sample in samples:
        variants = [sample[:cut] for cut in range(len(sample))]
        variants += [
            sample[:place] + bytes([value]) + sample[place + 1 :]
            for place in range(min(len(sample), 40))
            for value in (0x00, 0x03, 0x10, 0x22, 0x31, 0xBE, 0xFF)
        ]
        for data in variants:
            for wanted in (None, 3, 7):
                expected = outcome(python, data, wanted)
                assert outcome(compiled, data, wanted) == expected, (data.hex(), wanted)
                kinds.add(expected if isinstance(expected, str) else "parsed")
    # Packets parsed and every refusal the parser has, each met at least once.
    assert len(kinds) == 10, kinds


def test_the_receiver_state_the_path_reads_is_there_in_this_aiortc() -> None:
    names = [value for name, value in vars(receive).items() if name.isupper() and isinstance(value, str)]
    state = vars(video_receiver())
    missing = {name for name in names if name.startswith("_RTCRtpReceiver__") and name not in state}
    assert missing == set()
    assert hasattr(HeaderExtensionsMap(), receive.EXTENSION_IDS)


def video_receiver() -> RTCRtpReceiver:
    # The receiver only asks its transport whether it is closed until it starts receiving.
    return RTCRtpReceiver("video", transport=SimpleNamespace(state="new"))  # type: ignore[arg-type]


class CountingEstimator:
    def __init__(self) -> None:
        self.samples: list[tuple[int, int, int]] = []

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int) -> None:
        self.samples.append((arrival_time_ms, abs_send_time, payload_size))


def estimated(packets: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int]]:
    """The estimator's samples for video packets of 100 bytes given as (arrival, timestamp, marker,
    send time); no codec is negotiated, so nothing but the estimator sees them."""
    receiver = video_receiver()
    estimator = CountingEstimator()
    vars(receiver)[receive.REMOTE_BITRATE_ESTIMATOR] = estimator
    vars(receiver)[receive.CODECS] = {}
    path = ReceiverPath(receiver)
    stamp = receive.datetime.datetime.now(receive.datetime.UTC)
    for arrival, timestamp, marker, send_time in packets:
        sent = packet(marker=marker, payload=bytes(100))
        sent.timestamp = timestamp
        path.handle(sent, send_time, arrival, stamp)
    return estimator.samples


def test_the_estimator_gets_one_sample_per_frame_with_the_frames_bytes() -> None:
    frames = [(10, 0, 0, 100), (11, 0, 0, 101), (12, 0, 1, 102), (40, 3000, 1, 200)]
    assert estimated(frames) == [(12, 102, 300), (40, 200, 100)]


def test_a_frame_without_its_marker_packet_is_sampled_when_the_next_frame_begins() -> None:
    frames = [(10, 0, 0, 100), (11, 0, 0, 101), (40, 3000, 1, 200)]
    assert estimated(frames) == [(11, 101, 200), (40, 200, 100)]


VP8_DESCRIPTORS = [
    b"\x10",
    b"\x90\x80\x05",
    b"\x90\x80\x81\x23",
    b"\x80\xe0\x81\x23\x07\x40",
    b"\x80\x60\x07\x40",
    b"\x80\x10\x1f",
    b"\x80\x00",
]


@pytest.mark.parametrize("descriptor", VP8_DESCRIPTORS)
def test_vp8_depayloading_gives_aiortcs_bytes(descriptor: bytes) -> None:
    payload = descriptor + b"frame data"
    assert payload[receive.vp8_descriptor_length(payload) :] == vp8_depayload(payload) == b"frame data"


@pytest.mark.parametrize("truncated", [b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x80\x40", b"\x80\x20"])
def test_a_vp8_descriptor_aiortc_refuses_is_refused(truncated: bytes) -> None:
    with pytest.raises(ValueError):
        vp8_depayload(truncated)
    with pytest.raises(ValueError):
        receive.vp8_descriptor_length(truncated)


def test_counting_a_packet_keeps_the_statistics_aiortc_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    random = __import__("random").Random(5)
    stock, counted = StreamStatistics(90000), StreamStatistics(90000)
    monkeypatch.setattr(rtcrtpreceiver.time, "time", clock)
    monkeypatch.setattr(receive, "time", clock)
    sequence, timestamp = 65500, 0
    for _ in range(2000):
        now[0] += random.random() * 0.02
        sequence += random.choice([1, 1, 1, 1, 2, 0, -1, 40])
        timestamp += random.choice([0, 0, 3000])
        sent = packet(marker=0, payload=b"x")
        sent.sequence_number, sent.timestamp = sequence % 65536, timestamp
        stock.add(sent)
        receive.count(counted, sent)
        assert vars(counted) == vars(stock)
