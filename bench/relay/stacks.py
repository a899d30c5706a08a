"""Where the relay's time goes, from py-spy's raw (collapsed) stacks: self and inclusive share per
function, and per area of the code (aiortc's receive path, SRTP, the event loop, ...).

    .venv/bin/python bench/relay/stacks.py STACKS.txt [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

IDLE = {
    "run (threading.py)",
    "Thread.run (threading.py)",
    "select (selectors.py)",
    "EpollSelector.select (selectors.py)",
}

# Checked in this order; a sample counts for the first area one of whose functions is on its stack.
# Sampling without pausing the relay (--nonblocking) sometimes reads a stack only partly, so an area
# also names functions below its entry point.
AREAS: dict[str, tuple[str, ...]] = {
    "RTCP out: sender and receiver reports": ("RTCRtpSender._run_rtcp", "RTCRtpReceiver._run_rtcp"),
    "send: per-subscriber sender task (queue, packetize, RTP header, SRTP protect, sendto)": (
        "RTCRtpSender._run_rtp",
        "ForwardingSender._next_encoded_frame",
        "ForwardedTrack.recv",
        "RTCDtlsTransport._send_rtp",
        "StunProtocol.send_data",
    ),
    "publisher RTP in: parse, receiver (stats, NACK, REMB estimator, jitter buffer), fan-out": (
        "RTCDtlsTransport._handle_rtp_data",
        "RTCRtpReceiver._handle_rtp_packet",
    ),
    "RTCP in: receiver reports, NACK, PLI from subscribers, publisher's sender reports": (
        "RTCDtlsTransport._handle_rtcp_data",
    ),
    "SRTP unprotect and dispatch in the DTLS transport's read loop": ("RTCDtlsTransport.__run",),
    "UDP receive: socket read, aioice (STUN parse, consent), queue to the transport": (
        "_SelectorDatagramTransport._read_ready",
        "StunProtocol.datagram_received",
    ),
}


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    # "function (path/to/module.py:line)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":")[0].rstrip(")")
    return f"{name} ({module})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    # py-spy reports some waiting threads as running: a pool thread parked in Thread.run and the event
    # loop inside epoll_wait. Neither is work on the media path.
    stacks = [(frames, count) for frames, count in load(args.stacks) if short(frames[-1]) not in IDLE]
    total = sum(count for _frames, count in stacks)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        own[short(frames[-1])] += count
        for name in {short(frame) for frame in frames}:
            inclusive[name] += count
    print(f"{total} samples (idle waits left out)")
    print("\nby area")
    areas: Counter[str] = Counter()
    for frames, count in stacks:
        names = [short(frame).split(" (")[0] for frame in frames]
        area = next((label for label, roots in AREAS.items() if any(r in names for r in roots)), "other")
        areas[area] += count
    for label, count in areas.most_common():
        print(f"{100 * count / total:5.1f}%  {label}")
    print("\nself time")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {name}")
    print("\ninclusive time")
    for name, count in inclusive.most_common(args.top * 2):
        print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
