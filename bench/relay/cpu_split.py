"""Where an SFU's CPU goes at one configuration of the relay bench: user vs kernel time, and with `perf`,
which libraries and which event-loop callbacks (issue #12).

    .venv/bin/python bench/relay/cpu_split.py [--config 1x1] [--window 10] [--repeat 2] [--no-perf]

The bench's load (`relay_vs_janus.run_config`: the same generator, clip and cores) on Parley's relay and
on Janus in turns. Over each steady window: utime and stime of the SFU process per forwarded packet
(/proc, 10 ms ticks), and, unless `--no-perf`, a `perf record -e cpu-clock:u` of the SFU (user space
only: the kernel's share is the stime column) summarised by shared object; for Parley also the share of
samples under uvloop's UDP receive callback, its idle (call_soon) callbacks and its timers, from DWARF
call graphs. Sampling costs the SFU a little CPU: the perf repeat's µs figures are not results, its
shares are. Writes `results/relay_cpu_split.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import relay_vs_janus  # noqa: E402
import uvloop  # noqa: E402
from machine import machine  # noqa: E402
from process_cpu import CLOCK_TICKS  # noqa: E402

from relay.loadgen import Clip, encode_clip, wait_until  # noqa: E402

# uvloop's callbacks, by the Cython function names perf reports for them.
UVLOOP_CALLBACKS = {
    "udp_receive": "__pyx_f_6uvloop_4loop___uv_udp_on_receive",
    "idle_callbacks": "__pyx_f_6uvloop_4loop_cb_idle_callback",
    "timers": "__pyx_f_6uvloop_4loop___uvtimer_callback",
}


def user_and_system_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def perf_shares(data: Path, sort: str, children: bool) -> dict[str, float]:
    """Percent of samples per `sort` key (with `children`, including what the key called)."""
    command = ["perf", "report", "-i", str(data), "--stdio", "--sort", sort]
    command.append("--children" if children else "--no-children")
    report = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    shares: dict[str, float] = {}
    for line in report.splitlines():
        match = re.match(r"\s+([\d.]+)%\s+(?:[\d.]+%\s+)?(?:\[\.\]\s+)?(.+?)\s*$", line)
        if match and match.group(2) not in shares:
            shares[match.group(2)] = float(match.group(1))
    return shares


async def window_of(
    sfu: Any, config: tuple[int, int], clip: Clip, room: int, window_s: float, perf: Path | None
) -> dict[str, Any]:
    """One run of the bench's configuration on `sfu`, with the process's times sampled around the bench's
    own steady window (which starts 3 s after every subscriber receives)."""
    marks: dict[str, Any] = {}
    measure_window = relay_vs_janus.measure_window

    async def measured(sfu: Any, peers: Any, window_s: float, profile: Path | None = None) -> Any:
        async def mark() -> None:
            everyone = [s for _p, subs in peers for s in subs]
            await wait_until(lambda: all(len(s.arrivals.packets) > 50 for s in everyone), 30)
            await asyncio.sleep(3)
            marks["before"] = user_and_system_seconds(sfu.pid)
            recorder = None
            if perf is not None:
                recorder = await asyncio.create_subprocess_exec(
                    *("perf", "record", "-q", "-e", "cpu-clock:u", "-F", "1000"),
                    *(("--call-graph", "dwarf,16384") if sfu.name == "parley" else ()),
                    *("-p", str(sfu.pid), "-o", str(perf), "--", "sleep", str(window_s)),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            await asyncio.sleep(window_s)
            marks["after"] = user_and_system_seconds(sfu.pid)
            if recorder is not None:
                await recorder.wait()

        marker = asyncio.create_task(mark())
        result = await measure_window(sfu, peers, window_s, profile)
        await marker
        return result

    relay_vs_janus.measure_window = measured
    try:
        row = await relay_vs_janus.run_config(sfu, room, *config, clip, window_s)
    finally:
        relay_vs_janus.measure_window = measure_window
    packets = row["forwarded_packets"]
    user, system = (after - before for after, before in zip(marks["after"], marks["before"], strict=True))
    figures: dict[str, Any] = {
        "forwarded_packets": packets,
        "bench_cpu_us_per_forwarded_packet": row["sfu_cpu_us_per_forwarded_packet"],
        "user_us_per_forwarded_packet": round(user / packets * 1e6, 1),
        "system_us_per_forwarded_packet": round(system / packets * 1e6, 1),
        "loss_percent": row["loss_percent"],
        "generator_saturated": row["generator_saturated"],
        "load_average": os.getloadavg(),
        "perf": perf is not None,
    }
    if perf is not None:
        figures["user_percent_by_library"] = dict(list(perf_shares(perf, "dso", children=False).items())[:8])
        if sfu.name == "parley":
            by_symbol = perf_shares(perf, "sym", children=True)
            figures["user_percent_under_uvloop_callback"] = {
                name: by_symbol.get(symbol, 0.0) for name, symbol in UVLOOP_CALLBACKS.items()
            }
    return figures


async def run(config: tuple[int, int], window_s: float, repeats: int, use_perf: bool) -> dict[str, Any]:
    clip = encode_clip()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        parley, janus = relay_vs_janus.both_sfus(Path(folder), "uvloop")
        await parley.start()
        await janus.start()
        try:
            room = 5000
            for repeat in range(repeats):
                # The last repeat is sampled by perf; the ones before it are the clean figures.
                perf = use_perf and repeat == repeats - 1
                for sfu in (parley, janus) if repeat % 2 == 0 else (janus, parley):
                    room += 1
                    data = Path(folder) / f"{sfu.name}-{repeat}.data" if perf else None
                    row = await window_of(sfu, config, clip, room, window_s, data)
                    rows.append({"sfu": sfu.name, "repeat": repeat, **row})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            await parley.stop()
            await janus.stop()
    return {"machine": machine(), "config": f"{config[0]}x{config[1]}", "window_s": window_s, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="1x1")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-perf", action="store_true")
    parser.add_argument("--output", type=Path, default=HERE.parent / "results" / "relay_cpu_split.json")
    args = parser.parse_args()
    publishers, subscribers = (int(n) for n in args.config.split("x"))
    use_perf = not args.no_perf and shutil.which("perf") is not None
    result = uvloop.run(run((publishers, subscribers), args.window, args.repeat, use_perf))
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
