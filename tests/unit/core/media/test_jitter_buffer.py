"""`MarkerJitterBuffer` hands a video frame over on its marker packet once the frame has no gaps, and
otherwise behaves like aiortc's buffer (late packets, lost marker packets, unrecoverable gaps)."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from services.core.media.jitter_buffer import MarkerJitterBuffer, PacketizedFrame


def packet(sequence: int, timestamp: int, *, marker: bool = False) -> RtpPacket:
    rtp = RtpPacket(
        payload_type=96, sequence_number=sequence % 65536, timestamp=timestamp, ssrc=1, marker=int(marker)
    )
    # What the receiver attaches after depayloading; unique per packet so the frame's order is visible.
    rtp._data = f"{sequence % 65536}.".encode()  # type: ignore[attr-defined]
    return rtp


def frame_packets(first: int, count: int, timestamp: int) -> list[RtpPacket]:
    return [packet(first + i, timestamp, marker=i == count - 1) for i in range(count)]


def data_of(sequences: range | list[int]) -> bytes:
    return b"".join(f"{s % 65536}.".encode() for s in sequences)


def add_all(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[bool, JitterFrame | None]]:
    return [buffer.add(p) for p in packets]


def test_a_frame_comes_out_on_its_marker_packet() -> None:
    buffer = MarkerJitterBuffer()
    results = add_all(buffer, frame_packets(100, 3, timestamp=3000))
    assert [frame for _, frame in results[:2]] == [None, None]
    pli, frame = results[2]
    assert not pli and frame is not None
    assert (frame.data, frame.timestamp) == (data_of(range(100, 103)), 3000)


def test_the_stock_buffer_waits_for_the_next_frame_where_this_one_does_not() -> None:
    stock, marker = JitterBuffer(capacity=512, is_video=True), MarkerJitterBuffer()
    first_frame = frame_packets(100, 2, timestamp=3000)
    assert add_all(stock, first_frame)[-1][1] is None
    assert add_all(marker, first_frame)[-1][1] is not None


def test_single_packet_frames_come_out_one_by_one() -> None:
    buffer = MarkerJitterBuffer()
    out = [buffer.add(packet(s, 90 * s, marker=True))[1] for s in range(10, 15)]
    assert [f.timestamp for f in out if f is not None] == [90 * s for s in range(10, 15)]


def test_out_of_order_packets_release_the_frame_when_the_last_one_arrives() -> None:
    buffer = MarkerJitterBuffer()
    first, second, third, fourth = frame_packets(200, 4, timestamp=6000)
    assert buffer.add(first)[1] is None
    assert buffer.add(fourth)[1] is None  # marker, but 201 and 202 are missing
    assert buffer.add(third)[1] is None
    frame = buffer.add(second)[1]
    assert frame is not None and frame.data == data_of(range(200, 204))


def test_a_missing_packet_holds_the_frame_and_the_next_one_until_it_arrives() -> None:
    buffer = MarkerJitterBuffer()
    frame_a = frame_packets(300, 3, timestamp=1000)
    frame_b = frame_packets(303, 2, timestamp=2000)
    results = add_all(buffer, [frame_a[0], frame_a[2], *frame_b])
    assert all(frame is None for _, frame in results)
    # The retransmitted packet completes frame A; frame B, complete behind it, leaves with the next packet.
    frame = buffer.add(frame_a[1])[1]
    assert frame is not None and (frame.data, frame.timestamp) == (data_of(range(300, 303)), 1000)
    frame = buffer.add(packet(305, 3000))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (data_of(range(303, 305)), 2000)


def test_a_packet_from_an_already_released_frame_is_dropped() -> None:
    buffer = MarkerJitterBuffer()
    add_all(buffer, frame_packets(400, 2, timestamp=1000))
    assert buffer.add(packet(400, 1000)) == (False, None)  # a late duplicate (RTX after the original)
    frame = add_all(buffer, frame_packets(402, 2, timestamp=2000))[-1][1]
    assert frame is not None and frame.data == data_of(range(402, 404))


def test_a_frame_whose_marker_packet_is_lost_is_ended_by_the_next_frame() -> None:
    buffer = MarkerJitterBuffer()
    buffer.add(packet(500, 1000))
    buffer.add(packet(501, 1000))  # the marker packet 502 never comes ...
    # ... and 502 is taken by the next frame's first packet (the sender numbered it so, e.g. a lost
    # marker on a 2-packet frame): the stock rule ends frame 1000 there.
    frame = buffer.add(packet(502, 2000))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (data_of([500, 501]), 1000)
    frame = buffer.add(packet(503, 2000, marker=True))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (data_of([502, 503]), 2000)


def test_a_gap_that_never_fills_is_skipped_as_the_stock_buffer_does_with_a_key_frame_request() -> None:
    buffer = MarkerJitterBuffer(capacity=16)
    buffer.add(packet(600, 1000))  # 601, the marker packet, is lost for good
    released: list[JitterFrame] = []
    pli_seen = False
    for sequence in range(602, 602 + 20):
        pli, frame = buffer.add(packet(sequence, 1000 + 10 * sequence, marker=True))
        pli_seen = pli_seen or pli
        if frame is not None:
            released.append(frame)
    assert pli_seen
    # Frame 1000 is never handed over; the frames after the gap are, in order, once the buffer made room
    # (one per packet added, as in the stock buffer).
    assert [f.timestamp for f in released] == [1000 + 10 * s for s in range(602, 602 + len(released))]
    assert len(released) == 6


def test_sequence_numbers_wrap_around() -> None:
    buffer = MarkerJitterBuffer()
    frames = [buffer.add(p)[1] for p in frame_packets(65534, 4, timestamp=7000)]
    assert frames[:3] == [None, None, None]
    last = frames[3]
    assert last is not None and last.data == data_of([65534, 65535, 0, 1])
    out_of_order = frame_packets(65536 + 2, 3, timestamp=8000)
    assert buffer.add(out_of_order[2])[1] is None
    assert buffer.add(out_of_order[0])[1] is None
    frame = buffer.add(out_of_order[1])[1]
    assert frame is not None and (frame.data, frame.timestamp) == (data_of([2, 3, 4]), 8000)


def test_a_frame_carries_the_payloads_it_arrived_in_in_order_without_padding_only_packets() -> None:
    buffer = MarkerJitterBuffer()
    packets = frame_packets(300, 4, timestamp=9000)
    for p in packets:
        p.payload = f"payload {p.sequence_number}".encode()
    packets[2].payload = b""  # padding only: RtpPacket.parse strips the padding
    first, second, third, fourth = packets
    for p in (first, third, second):
        assert buffer.add(p)[1] is None
    frame = buffer.add(fourth)[1]
    assert isinstance(frame, PacketizedFrame)
    assert frame.payloads == [b"payload 300", b"payload 301", b"payload 303"]


class RescanningBuffer(MarkerJitterBuffer):
    """The buffer before it kept its place: each packet added looks at the frame from its origin."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        self._scan_origin = None
        return super()._remove_frame(sequence_number)


def test_keeping_its_place_between_packets_releases_what_looking_from_the_origin_releases() -> None:
    random = __import__("random").Random(12)
    for _ in range(200):
        sent: list[RtpPacket] = []
        sequence = random.randrange(65536)
        for frame in range(40):
            count = random.randint(1, 8)
            for index in range(count):
                marker = index == count - 1 and random.random() > 0.05
                sent.append(packet(sequence, 3000 * frame, marker=marker))
                sequence += 1
        arriving: list[RtpPacket] = []
        for rtp in sent:
            roll = random.random()
            if roll < 0.05:
                continue  # lost
            arriving.append(rtp)
            if roll > 0.95:
                arriving.append(rtp)  # duplicated (a retransmission)
        for _ in range(len(arriving) // 10):
            at = random.randrange(len(arriving) - 3)
            arriving[at], arriving[at + 3] = arriving[at + 3], arriving[at]
        kept, rescanning = MarkerJitterBuffer(capacity=64), RescanningBuffer(capacity=64)
        for rtp in arriving:
            (pli, frame), (pli_rescanned, frame_rescanned) = kept.add(rtp), rescanning.add(rtp)
            assert pli == pli_rescanned
            assert (frame is None) == (frame_rescanned is None)
            if frame is not None and frame_rescanned is not None:
                assert (frame.data, frame.timestamp) == (frame_rescanned.data, frame_rescanned.timestamp)
                assert isinstance(frame, PacketizedFrame) and isinstance(frame_rescanned, PacketizedFrame)
                assert frame.payloads == frame_rescanned.payloads
