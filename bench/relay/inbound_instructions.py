"""Instructions per publisher datagram of the relay's whole inbound handling, SRTP unprotect included
(`InboundMedia.received` → `PublisherRtp.handle`), in one or more source trees, counted by valgrind's
callgrind: repeatable on a loaded machine, where CPU time is not (issue #12).

    git archive <before> | tar -x -C /tmp/before
    .venv/bin/python bench/relay/inbound_instructions.py before=/tmp/before,after=. [--output FILE]

`receive_instructions.py` counts `PublisherRtp.handle` alone on SRTP-free packets; this one feeds the
same packets (the bench clip's shape: VP8 frames of 6 packets of 1,100 bytes with abs-send-time, 33 ms
apart) protected with AEAD-AES-256-GCM, the suite the bench's aiortc peers negotiate, to the datagram
handler the socket calls, with a DTLS transport stand-in holding a real pylibsrtp session. A tree whose
`InboundMedia` takes `compiled` is counted twice: with services.relay._fastsend (`compiled`) and with
pylibsrtp's unprotect (`python`, as `PARLEY_RELAY__COMPILED_SEND=false` runs it). The count for a
datagram is the difference between a run of `--packets` + 6,000 datagrams and one of `--packets`, over
6,000, as in receive_instructions.py.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from receive_instructions import EXTRA_PACKETS, PACKETS_PER_FRAME, arguments, instructions, made_packets

HERE = Path(__file__).resolve().parent
# AEAD-AES-256-GCM: a 32-byte master key and a 12-byte salt.
KEY = bytes(range(44))


def protected_packets(count: int) -> list[tuple[bytes, int]]:
    from pylibsrtp import Policy, Session

    outbound = Session(
        Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)
    )
    return [(outbound.protect(data), arrival) for data, arrival in made_packets(count)]


def handle_datagrams(datagrams: Path, mode: str) -> None:
    """Run in the child: feed the pickled datagrams to the `InboundMedia` of the tree on PYTHONPATH."""
    import services.relay.inbound

    tree = str(Path.cwd())
    assert services.relay.inbound.__file__.startswith(tree), services.relay.inbound.__file__
    sys.path.insert(1, str(HERE))
    import receive_path
    from aiortc.rtcdtlstransport import State
    from pylibsrtp import Policy, Session

    from services.relay.inbound import DTLS_RX_BYTES, DTLS_RX_PACKETS, InboundMedia

    transport, frames = receive_path.receiver_and_transport()
    transport._state = State.CONNECTED
    transport._rx_srtp = Session(
        Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)
    )
    vars(transport)[DTLS_RX_BYTES] = vars(transport)[DTLS_RX_PACKETS] = 0
    socket_protocol = SimpleNamespace(datagram_received=lambda data, addr: None)
    connection = SimpleNamespace(_queue=SimpleNamespace(_queue=[]), _protocols=[socket_protocol])
    # The InboundMedia makes its own PublisherRtp, compiled or not as it is.
    if mode == "tree":
        InboundMedia(transport, connection).install()  # type: ignore[arg-type]
    else:
        from services.relay.fast_send import COMPILED

        compiled = COMPILED if mode == "compiled" else None
        assert mode == "python" or COMPILED is not None, "services.relay._fastsend was not built"
        InboundMedia(transport, connection, compiled=compiled).install()  # type: ignore[arg-type, call-arg]
    received = socket_protocol.datagram_received
    address = ("127.0.0.1", 5000)
    data = pickle.loads(datagrams.read_bytes())
    for datagram, _ in data:
        received(datagram, address)
    # Every datagram unprotected and every frame out: nothing was dropped on the way.
    assert len(frames) == len(data) // PACKETS_PER_FRAME, len(frames)


def modes(tree: Path) -> list[str]:
    """`compiled` and `python` where the tree's InboundMedia takes `compiled`, else `tree` (as it is)."""
    source = (tree / "services" / "relay" / "inbound.py").read_text()
    return ["compiled", "python"] if "compiled: ModuleType" in source else ["tree"]


def main() -> None:
    parser = arguments()
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        handle_datagrams(args.child, args.mode)
        return
    named = (tree.partition("=") for tree in args.trees.split(","))
    trees = {name: Path(tree).resolve() for name, _, tree in named}
    sys.path.insert(0, str(HERE.parent))
    from machine import machine

    result: dict[str, object] = {
        "machine": machine(),
        "packets_per_frame": PACKETS_PER_FRAME,
        "srtp": "AEAD-AES-256-GCM",
        "trees": {},
    }
    folder = Path(tempfile.mkdtemp(prefix="inbound-instructions-"))
    few, more = folder / "few.pickle", folder / "more.pickle"
    few.write_bytes(pickle.dumps(protected_packets(args.packets)))
    more.write_bytes(pickle.dumps(protected_packets(args.packets + EXTRA_PACKETS)))
    for name, tree in trees.items():
        for mode in modes(tree):
            started = time.monotonic()
            child = [__file__, "--mode", mode, "--child"]
            low, high = instructions(tree, few, child), instructions(tree, more, child)
            per_packet = round((high - low) / EXTRA_PACKETS)
            label = name if mode == "tree" else f"{name}/{mode}"
            result["trees"][label] = {
                "tree": str(tree),
                "mode": mode,
                "instructions_per_datagram": per_packet,
            }  # type: ignore[index]
            print(
                f"{label}: {per_packet} instructions per datagram ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    shutil.rmtree(folder)
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
