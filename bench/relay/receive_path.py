"""CPU per publisher RTP packet of the receive handling alone: aiortc's chain next to the relay's (issue #12).

    .venv/bin/python bench/relay/receive_path.py [--packets 30000] [--rounds 5]

One video receiver set up as the relay sets it up (VP8, marker jitter buffer, the frame tap's place taken by
a list), fed the same SRTP-free packets (1000-byte payloads, 5 per frame, abs-send-time) in a tight loop,
no network and no event loop: aiortc's way (`RtpPacket.parse`, the router, `_handle_rtp_packet` run with
`run_now`, as services/relay/inbound.py ran it before) and `services.relay.receive.PublisherRtp`. Process
CPU time per packet, per round, both ways in turns; writes `results/relay_receive_path.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from aiortc import RTCRtpReceiver  # noqa: E402
from aiortc.rtcdtlstransport import RtpRouter  # noqa: E402
from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402
from machine import machine  # noqa: E402

from services.core.media.jitter_buffer import MarkerJitterBuffer  # noqa: E402
from services.relay import receive  # noqa: E402
from services.relay.run_now import run_now  # noqa: E402

SSRC = 77
PAYLOAD_TYPE = 96
PACKETS_PER_FRAME = 5
ABS_SEND_TIME = RTCRtpHeaderExtensionParameters(
    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
)
MID = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")


def extensions() -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=[MID, ABS_SEND_TIME]))
    return extensions_map


def receiver_and_transport() -> tuple[Any, list[Any]]:
    receiver = RTCRtpReceiver("video", transport=SimpleNamespace(state="new"))  # type: ignore[arg-type]
    state = vars(receiver)
    state[receive.CODECS] = {
        PAYLOAD_TYPE: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=PAYLOAD_TYPE)
    }
    state[receive.DECODER_THREAD] = True
    frames: list[Any] = []
    state[receive.DECODER_QUEUE] = SimpleNamespace(put=frames.append)
    state[receive.JITTER_BUFFER] = MarkerJitterBuffer()
    router = RtpRouter()
    router.register_receiver(receiver, ssrcs=[SSRC], payload_types=[PAYLOAD_TYPE])
    return SimpleNamespace(_rtp_header_extensions_map=extensions(), _rtp_router=router), frames


def packets(count: int) -> list[tuple[bytes, int]]:
    extensions_map = extensions()
    made = []
    for index in range(count):
        frame, place = divmod(index, PACKETS_PER_FRAME)
        packet = RtpPacket(
            payload_type=PAYLOAD_TYPE,
            marker=int(place == PACKETS_PER_FRAME - 1),
            sequence_number=index % 65536,
            timestamp=frame * 3000,
            ssrc=SSRC,
        )
        # VP8 payload descriptor: S bit on a frame's first packet.
        packet.payload = (b"\x10" if place == 0 else b"\x00") + bytes(1000)
        packet.extensions.mid = "0"
        packet.extensions.abs_send_time = (index * 50) & 0xFFFFFF
        made.append((packet.serialize(extensions_map), 1_000_000 + index // 2))
    return made


def aiortc_way(data: list[tuple[bytes, int]]) -> tuple[float, int]:
    transport, frames = receiver_and_transport()
    started = time.process_time()
    for datagram, arrival in data:
        packet = RtpPacket.parse(datagram, transport._rtp_header_extensions_map)
        run_now(transport._rtp_router.route_rtp(packet)._handle_rtp_packet(packet, arrival_time_ms=arrival))
    return (time.process_time() - started) / len(data) * 1e6, len(frames)


def relay_way(data: list[tuple[bytes, int]]) -> tuple[float, int]:
    transport, frames = receiver_and_transport()
    path = receive.PublisherRtp(transport)  # type: ignore[arg-type]
    started = time.process_time()
    for datagram, arrival in data:
        path.handle(datagram, arrival)
    return (time.process_time() - started) / len(data) * 1e6, len(frames)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = packets(args.packets)
    rounds = []
    for number in range(args.rounds):
        (stock, stock_frames), (relay, relay_frames) = aiortc_way(data), relay_way(data)
        assert stock_frames == relay_frames == args.packets // PACKETS_PER_FRAME
        rounds.append({"aiortc_us_per_packet": round(stock, 2), "relay_us_per_packet": round(relay, 2)})
        print(f"round {number}: aiortc {stock:.2f} µs/packet, relay {relay:.2f} µs/packet")
    result = {
        "machine": machine(),
        "packets": args.packets,
        "packets_per_frame": PACKETS_PER_FRAME,
        "rounds": rounds,
        "median_aiortc_us_per_packet": statistics.median(r["aiortc_us_per_packet"] for r in rounds),
        "median_relay_us_per_packet": statistics.median(r["relay_us_per_packet"] for r in rounds),
    }
    (HERE.parent / "results" / "relay_receive_path.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
