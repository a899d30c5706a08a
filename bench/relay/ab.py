"""Two (or more) versions of Parley's relay taking turns on the relay bench's load, without Janus: CPU µs per
forwarded packet of each, for a before/after comparison of a change within one run.

    git archive <before> | tar -x -C /tmp/before
    .venv/bin/python bench/relay/ab.py before=/tmp/before,after=. [--configs 1x1,1x16] [--window 10]
                                       [--repeat 3] [--output results/NAME.json]

Each version is `python -m services.relay` started from its own source tree (this venv's packages), on
the SFU core, as `relay_vs_janus.py` runs it; who goes first alternates between repeats. The figures are
as noisy as the machine: compare the versions within one run, and read the windows the generator kept up
with (`saturated` False). `--output` writes every window (with the load average after it) and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

# This process holds gRPC channels to the relays it started before it starts the next relay's broker:
# gRPC's fork handlers then crash that child (SIGSEGV in cygrpc's event engine before the broker runs).
# Nothing here forks a process that uses gRPC, so they are not needed. Inherited by the relays alike.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import uvloop  # noqa: E402
from machine import machine  # noqa: E402
from relay_vs_janus import GENERATOR_CPUS, SFU_CPUS, run_config  # noqa: E402

from relay.loadgen import encode_clip  # noqa: E402
from relay.sfus import ParleyRelay  # noqa: E402

# What each window's record keeps of `run_config`'s row.
WINDOW_FIGURES = (
    "sfu_cpu_us_per_forwarded_packet",
    "forwarded_packets",
    "loss_percent",
    "delay_ms_p99",
    "generator_saturated",
)


async def compare(
    trees: dict[str, Path],
    configs: list[tuple[int, int]],
    window_s: float,
    repeats: int,
    windows: list[dict[str, object]],
) -> dict[str, dict[str, list[float]]]:
    clip = encode_clip()
    clean: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory(prefix="relay-ab-") as folder:
        relays = {}
        for name, tree in trees.items():
            (Path(folder) / name).mkdir()
            relays[name] = ParleyRelay(Path(folder) / name, SFU_CPUS, root=tree)
        try:
            for relay in relays.values():
                await relay.start()
            room = 1000
            for repeat in range(repeats):
                order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
                for publishers, subscribers in configs:
                    for name in order:
                        room += 1
                        row = await run_config(relays[name], room, publishers, subscribers, clip, window_s)
                        cpu = row["sfu_cpu_us_per_forwarded_packet"]
                        print(
                            f"{name} {publishers}x{subscribers} #{repeat}: {cpu} µs/packet, loss "
                            f"{row['loss_percent']} %, delay p99 {row['delay_ms_p99']} ms, saturated "
                            f"{row['generator_saturated']}",
                            flush=True,
                        )
                        windows.append(
                            {"tree": name, "config": f"{publishers}x{subscribers}", "repeat": repeat}
                            | {key: row[key] for key in WINDOW_FIGURES}
                            | {"load_average": os.getloadavg()}
                        )
                        if not row["generator_saturated"] and cpu is not None:
                            clean[name].setdefault(f"{publishers}x{subscribers}", []).append(cpu)
        finally:
            for relay in relays.values():
                await relay.stop()
    return clean


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", help="NAME=SOURCE_TREE,... the relay versions to compare")
    parser.add_argument("--configs", default="1x1,1x16", help="PxS,... publishers x subscribers each")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of each steady window")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the configurations")
    parser.add_argument("--output", type=Path, help="a JSON file for every window and the medians")
    args = parser.parse_args()
    named = (tree.partition("=") for tree in args.trees.split(","))
    trees = {name: Path(tree).resolve() for name, _, tree in named}
    configs = [(int(p), int(s)) for p, _, s in (c.partition("x") for c in args.configs.split(","))]
    os.sched_setaffinity(0, GENERATOR_CPUS)
    started = machine()
    print(f"load average at start {os.getloadavg()}")
    windows: list[dict[str, object]] = []
    clean = uvloop.run(compare(trees, configs, args.window, args.repeat, windows))
    print(f"load average at end {os.getloadavg()}")
    medians: dict[str, dict[str, float]] = {}
    for name, rows in clean.items():
        for config, figures in rows.items():
            medians.setdefault(name, {})[config] = round(statistics.median(figures), 1)
            print(f"{name} {config}: median {statistics.median(figures):.1f} µs/packet over {figures}")
    if args.output is not None:
        result = {
            "machine": started,
            "load_average_at_end": os.getloadavg(),
            "trees": {name: str(tree) for name, tree in trees.items()},
            "window_s": args.window,
            "windows": windows,
            "median_us_per_forwarded_packet_clean_windows": medians,
        }
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
