"""Instructions per publisher RTP packet of the relay's receive handling (`PublisherRtp.handle`) in two or
more source trees, counted by valgrind's callgrind: repeatable on a loaded machine, where CPU time is not
(issue #12).

    git archive <before> | tar -x -C /tmp/before
    .venv/bin/python bench/relay/receive_instructions.py before=/tmp/before,after=. [--output FILE]

Each tree's handling is run in its own `valgrind --tool=callgrind` process on the bench clip's shape: VP8
frames of 6 packets of 1,100 bytes with abs-send-time, 30 frames/s (arrival 33 ms apart, as the REMB
estimator's window sees them), no SRTP, no event loop; the packets are made once, in this process, and
read by each run from a pickle. The count for a packet is the difference between a run of `--packets` +
6,000 packets and one of `--packets`, over 6,000: start-up, imports and reading the pickle mostly cancel
out (what is left of reading it, a few hundred instructions a packet, is the same in every tree).
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXTRA_PACKETS = 6000
PACKETS_PER_FRAME = 6


def made_packets(count: int) -> list[tuple[bytes, int]]:
    """`count` datagrams of the clip's shape, with their arrival times (ms)."""
    sys.path.insert(0, str(HERE))
    import receive_path
    from aiortc.rtp import RtpPacket

    extensions = receive_path.extensions()
    data = []
    for index in range(count):
        frame, place = divmod(index, PACKETS_PER_FRAME)
        packet = RtpPacket(
            payload_type=receive_path.PAYLOAD_TYPE,
            marker=int(place == PACKETS_PER_FRAME - 1),
            sequence_number=index % 65536,
            timestamp=frame * 3000,
            ssrc=receive_path.SSRC,
        )
        # VP8 payload descriptor with a 7-bit picture id; S bit on the frame's first packet.
        packet.payload = bytes([0x90 if place == 0 else 0x80, 0x80, frame & 0x7F]) + bytes(1100)
        packet.extensions.mid = "0"
        packet.extensions.abs_send_time = ((frame * 33 + place) * 262) & 0xFFFFFF
        data.append((packet.serialize(extensions), 1_000_000 + frame * 33 + place // 3))
    return data


def handle_packets(packets: Path) -> None:
    """Run in the child: feed the pickled packets to the `PublisherRtp` of the tree on PYTHONPATH."""
    # The tree's modules first: receive_path.py puts this checkout first on sys.path when imported, and
    # would otherwise bring this checkout's relay in.
    import services.core.media.jitter_buffer
    import services.relay.receive

    tree = str(Path.cwd())
    assert services.relay.receive.__file__.startswith(tree), services.relay.receive.__file__
    assert services.core.media.jitter_buffer.__file__.startswith(tree)
    sys.path.insert(1, str(HERE))
    import receive_path

    data = pickle.loads(packets.read_bytes())
    _, frames = receive_path.relay_way(data)
    assert frames == len(data) // PACKETS_PER_FRAME


def instructions(tree: Path, packets: Path, child: list[str] | None = None) -> int:
    """User-space instructions of `child` (this script's child run by default) with `packets`, in `tree`."""
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out"),
                *(sys.executable, *(child or [__file__, "--child"]), str(packets)),
            ],
            cwd=tree,
            # A fixed hash seed: with a random one, start-up work (and so the difference of two runs) varies
            # by thousands of instructions per packet between runs of the same tree.
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"Collected : (\d+)", run.stderr)
    assert match, run.stderr
    return int(match.group(1))


def arguments() -> argparse.ArgumentParser:
    """The options of this script and of inbound_instructions.py."""
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="?", help="NAME=SOURCE_TREE,... the relay versions to compare")
    parser.add_argument("--packets", type=int, default=1200)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = arguments().parse_args()
    if args.child is not None:
        handle_packets(args.child)
        return
    named = (tree.partition("=") for tree in args.trees.split(","))
    trees = {name: Path(tree).resolve() for name, _, tree in named}
    sys.path.insert(0, str(HERE.parent))
    from machine import machine

    result: dict[str, object] = {"machine": machine(), "packets_per_frame": PACKETS_PER_FRAME, "trees": {}}
    folder = Path(tempfile.mkdtemp(prefix="receive-instructions-"))
    few, more = folder / "few.pickle", folder / "more.pickle"
    few.write_bytes(pickle.dumps(made_packets(args.packets)))
    more.write_bytes(pickle.dumps(made_packets(args.packets + EXTRA_PACKETS)))
    for name, tree in trees.items():
        started = time.monotonic()
        low, high = instructions(tree, few), instructions(tree, more)
        per_packet = round((high - low) / EXTRA_PACKETS)
        result["trees"][name] = {"tree": str(tree), "instructions_per_packet": per_packet}  # type: ignore[index]
        print(
            f"{name}: {per_packet} instructions per packet ({time.monotonic() - started:.0f} s)", flush=True
        )
    shutil.rmtree(folder)
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
