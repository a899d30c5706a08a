"""CPU per forwarded packet of the relay's fan-out alone, from a feed's frame to its subscribers' sockets
(issue #12): one version of the relay's code against another, or its send loop compiled against Python.

    .venv/bin/python bench/relay/send_path.py [--tree /tmp/before] [--python-send] [--subscribers 16]
                                              [--frames 3000] [--rounds 5] [--srtp gcm|sha1]

One VP8 `FeedTrack` with N subscribers set up as the relay sets them up (`ForwardedTrack`, a running
`ForwardingSender` as its sink, the relay's outbox where the tree has one), each subscriber's DTLS
transport a stand-in with a real pylibsrtp session (AEAD-AES-256-GCM, what aiortc peers negotiate, as
in the relay bench; `--srtp sha1`: AES-CM-128/HMAC-SHA1-80, whose HMAC costs ~15,000 instructions per
1,100-byte packet) and a real uvloop UDP socket per subscriber (as with a port per peer connection),
sending to one loopback socket that nobody reads (the kernel drops what overflows it, after the send).
Frames of 5 payloads of 1,100 bytes, as the marker jitter buffer hands them over, go through
`FeedTrack.on_frame` in a tight loop. Prints process CPU (user + system: the sends' kernel work
included) per forwarded packet per round; `--tree` runs another version of the relay's code (a `git
archive` of it) with this venv. Under valgrind's callgrind, two runs with different `--frames` give
instructions per packet from their difference (the start-up cancels out).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PAYLOADS = 5
PAYLOAD_BYTES = 1100


async def run(subscribers: int, frames: int, rounds: int, python_send: bool, srtp: str) -> list[float]:
    from aiortc.codecs import CODECS
    from aiortc.rtcdtlstransport import State
    from aiortc.rtcrtpparameters import (
        RTCRtcpParameters,
        RTCRtpCodecParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpSendParameters,
    )
    from parley.relay.v1 import media_pb2, metering_pb2
    from pylibsrtp import Policy, Session

    from services.core.media.jitter_buffer import PacketizedFrame
    from services.relay import forwarding_sender
    from services.relay.feed import FeedTrack
    from services.relay.forwarded_track import ForwardedTrack
    from services.relay.metering import StreamLabels, StreamMeter

    def meter() -> StreamMeter:
        labels = StreamLabels(
            biz_name="bench",
            room_id="room",
            uid="uid",
            feed_id="feed",
            stream_id="stream",
            role=metering_pb2.STREAM_ROLE_SUBSCRIPTION,
            kind=media_pb2.MEDIA_KIND_VIDEO,
        )
        return StreamMeter(labels)

    extra: dict[str, Any] = {}
    outbox = None
    if "outbox" in inspect.signature(FeedTrack).parameters:
        from services.relay.fast_send import COMPILED, Outbox

        outbox = Outbox(None if python_send else COMPILED)
        extra["outbox"] = outbox
    vp8 = next(codec for codec in CODECS["video"] if codec.mimeType == "video/VP8")
    feed = FeedTrack(
        kind="video",
        codec=vp8,
        receiver=SimpleNamespace(),  # type: ignore[arg-type]
        media_ssrc=1,
        meter=meter(),
        keyframe_interval_s=3600,
        **extra,
    )
    feed.keyframes.request = lambda: None  # type: ignore[method-assign]

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    parameters = RTCRtpSendParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(
                id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
        ],
        muxId="0",
        rtcp=RTCRtcpParameters(cname="bench"),
    )
    async def send_rtcp(data: bytes) -> None:
        """The senders' RTCP (sender reports): not measured."""

    if srtp == "gcm":
        profile, key_length = Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32 + 12
    else:
        profile, key_length = Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16 + 14
    policy = Policy(key=os.urandom(key_length), ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    senders = []
    transports = []
    for _ in range(subscribers):
        udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        transports.append(udp)
        pair = SimpleNamespace(protocol=SimpleNamespace(transport=udp), remote_addr=sink.getsockname())
        dtls: Any = SimpleNamespace(
            state="connected",
            _state=State.CONNECTED,
            _stats_id="transport",
            _tx_srtp=Session(policy),
            transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})),
            _register_rtp_sender=lambda sender, parameters: None,
            _unregister_rtp_sender=lambda sender: None,
            _send_rtp=send_rtcp,
        )
        vars(dtls)[forwarding_sender.DTLS_TX_BYTES] = vars(dtls)[forwarding_sender.DTLS_TX_PACKETS] = 0
        track = ForwardedTrack("video", feed, meter())
        sender_args: list[Any] = [track, dtls] + ([outbox] if outbox is not None else [])
        sender = forwarding_sender.ForwardingSender(*sender_args)
        await sender.send(parameters)
        senders.append(sender)
        feed.attach(track)
    # Each sender's RTP loop makes it its track's sink once it runs.
    await asyncio.sleep(0)
    assert all(track.sink is not None for track in feed._subscribers)

    # A VP8 key frame header (640x480), then delta frames: what subscribers forward is only their size.
    key = b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01" + bytes(PAYLOADS * PAYLOAD_BYTES - 10)
    delta = b"\x11" + bytes(PAYLOADS * PAYLOAD_BYTES - 1)
    payloads = [b"\x90\x80\x05" + delta[i * PAYLOAD_BYTES : (i + 1) * PAYLOAD_BYTES] for i in range(PAYLOADS)]
    figures = []
    timestamp = 0
    feed.on_frame(vp8, PacketizedFrame(key, timestamp, payloads))
    assert all(track.frames_forwarded == 1 for track in feed._subscribers), "the key frame was not forwarded"
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(frames):
            timestamp += 3000
            feed.on_frame(vp8, PacketizedFrame(delta, timestamp, payloads))
        elapsed = time.process_time() - start
        figures.append(round(elapsed / (frames * PAYLOADS * subscribers) * 1e6, 2))
        # Let the loop run between rounds (RTCP tasks and the like), outside the measurement.
        await asyncio.sleep(0.05)
    for sender in senders:
        await sender.stop()
    for udp in transports:
        udp.close()
    sink.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, help="another version of the relay's source tree")
    parser.add_argument("--python-send", action="store_true", help="the send loop in Python")
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--srtp", choices=["gcm", "sha1"], default="gcm")
    args = parser.parse_args()
    tree = (args.tree or Path(__file__).resolve().parents[2]).resolve()
    sys.path.insert(0, str(tree))
    import uvloop

    figures = uvloop.run(run(args.subscribers, args.frames, args.rounds, args.python_send, args.srtp))
    print(
        f"{tree}{' (python send)' if args.python_send else ''}: µs CPU per forwarded packet "
        f"{figures}, median {statistics.median(figures)}, load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
