"""Parley's media relay side by side with Janus 1.1.2 (VideoRoom), in one run, with one load generator.

    .venv/bin/python bench/relay_vs_janus.py [--configs 1x1,1x4,1x16,2x16,4x16] [--window 20] [--repeat 3]
                                             [--profile DIR]

For each configuration (P publishers x S subscribers each) and each SFU: P aiortc publishers loop a
pre-encoded VP8 clip (~1.5 Mbps, 30 fps), P*S aiortc subscribers count packets without decoding; after a
warm-up the SFU's CPU time, the packets subscribers received, loss and forwarding delay are measured over
a steady window. The SFU runs alone on one core, the generator (and Tansu) on the other, so neither
steals the other's CPU; the generator's own CPU and the kernel's UDP receive-buffer errors are recorded
with every run so a saturated generator is not mistaken for a slow SFU.

Writes bench/results/relay_vs_janus.json. Issue #5: the figure that counts is Parley CPU per forwarded
packet / Janus CPU per forwarded packet at 1 x 16.

    .venv/bin/python bench/relay_vs_janus.py --capacity 8,16,24,32 [--window 10] [--repeat 2]

instead ramps the subscribers of one publisher on each SFU (`ramp_subscribers`) for subscriber streams per
core at 0 % loss and memory per stream (issue #12); writes bench/results/relay_capacity.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
from machine import machine  # noqa: E402
from process_cpu import stat_cpu_seconds  # noqa: E402
from relay.loadgen import (  # noqa: E402
    RECORDERS,
    Clip,
    Publisher,
    Subscriber,
    analyse,
    encode_clip,
    percentile,
    wait_until,
)
from relay.sfu_logs import SfuLogs, window_failed  # noqa: E402
from relay.sfus import JanusVideoRoom, ParleyRelay, Sfu  # noqa: E402

SFU_CPUS = {1}
GENERATOR = (
    "aiortc on uvloop, pre-encoded VP8 clip looped; subscribers record packets without decoding, from "
    "the RTP headers of the SRTP datagrams (recorder headers) or after aiortc's receive path (aiortc)"
)
DEFAULT_OUTPUT = HERE / "results" / "relay_vs_janus.json"
GENERATOR_CPUS = {0}


def cpu_seconds(pid: int) -> float:
    """Nanosecond CPU time of every thread of `pid` (schedstat), as /proc/<pid>/stat's utime+stime
    counts only in 10 ms ticks, too coarse for a 1 x 1 window."""
    return schedstat_seconds(pid)[0]


def schedstat_seconds(pid: int) -> tuple[float, float]:
    """CPU time and time spent runnable but waiting for a CPU, summed over the threads of `pid`."""
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
            running += int(fields[0])
            waiting += int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    return running / 1e9, waiting / 1e9


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def udp_rcvbuf_errors() -> int:
    """The machine's `Udp: RcvbufErrors`: every UDP socket's, other sessions' and the SFUs' included."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def own_udp_drops() -> dict[str, int]:
    """Datagrams the kernel dropped on each of this process's open UDP sockets (`drops` of /proc/net/udp,
    a full receive buffer), by socket inode."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    drops = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            drops[fields[9]] = int(fields[12])
    return drops


def drops_between(before: dict[str, int], after: dict[str, int]) -> int:
    """Drops in between on the sockets open at the end (one closed in between takes its count along)."""
    return sum(count - before.get(inode, 0) for inode, count in after.items())


# A run whose generator fell behind (its loop woke this late, or the kernel dropped datagrams on its
# sockets) measured the generator: its figures are kept in the JSON but left out of the summary.
SATURATED_LOOP_LAG_MS = 50.0


def generator_saturated(result: dict[str, Any]) -> bool:
    """Datagrams dropped on the generator's own sockets, its loop waking late, or its publishers
    skipping frames. The machine-wide `RcvbufErrors` is recorded beside them but no longer decides:
    other sessions' sockets count there."""
    return bool(
        result["generator_udp_drops"] > 0
        or result["generator_loop_lag_ms_p99"] > SATURATED_LOOP_LAG_MS
        or result.get("generator_frames_skipped", 0) > 0
    )


async def watch_loop_lag(lags: list[float]) -> None:
    """How late this process's event loop wakes from a 10 ms sleep: the generator's own queueing. A
    frame's forwarding delay includes it (arrivals are stamped when the loop gets to a packet), so a
    large lag means the delays of that run are the generator's, not the SFU's."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((time.perf_counter() - before - 0.01) * 1000)


async def measure_window(
    sfu: Sfu,
    peers: list[tuple[Publisher, list[Subscriber]]],
    window_s: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Once every subscriber receives and 3 s more: the SFU's CPU, what subscribers received, loss and
    delay over a steady window of `window_s`, and whether the generator kept up."""
    everyone = [s for _p, subs in peers for s in subs]
    # Every subscriber receiving (its first key frame comes with the clip's next loop, <= 4 s).
    started = await wait_until(lambda: all(len(s.arrivals.packets) > 50 for s in everyone), 30)
    await asyncio.sleep(3)
    me = os.getpid()
    before = (
        cpu_seconds(sfu.pid),
        stat_cpu_seconds(sfu.pid),
        *schedstat_seconds(me),
        udp_rcvbuf_errors(),
        own_udp_drops(),
    )
    t0 = time.perf_counter()
    lags: list[float] = []
    watcher = asyncio.create_task(watch_loop_lag(lags))
    profiler = None
    if profile is not None:
        # Sampling pauses the relay briefly at every sample: a profiled run's figures are not results.
        profiler = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"),
            *(
                "record",
                "--nonblocking",
                "--pid",
                str(sfu.pid),
                "--duration",
                str(int(window_s)),
                "--rate",
                "250",
            ),
            *("--format", "raw", "--output", str(profile)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    await asyncio.sleep(window_s)
    t1 = time.perf_counter()
    watcher.cancel()
    after = (
        cpu_seconds(sfu.pid),
        stat_cpu_seconds(sfu.pid),
        *schedstat_seconds(me),
        udp_rcvbuf_errors(),
        own_udp_drops(),
    )
    rss = rss_mib(sfu.pid)
    await asyncio.sleep(0.5)
    if profiler is not None:
        await profiler.wait()
    result = analyse(peers, t0, t1)
    skipped = sum(n for publisher, _subs in peers for at, n in publisher.track.skipped if t0 <= at < t1)
    cpu = after[0] - before[0]
    forwarded = result["forwarded_packets"]
    result.update(
        {
            "all_subscribers_receiving": started,
            "sfu_cpu_s": round(cpu, 3),
            "sfu_cpu_s_from_stat": round(after[1] - before[1], 2),
            "sfu_cpu_percent": round(100 * cpu / (t1 - t0), 1),
            "sfu_cpu_us_per_forwarded_packet": round(cpu * 1e6 / forwarded, 2) if forwarded else None,
            "sfu_rss_mib": rss,
            "generator_cpu_percent": round(100 * (after[2] - before[2]) / (t1 - t0), 1),
            # Runnable but waiting for CPU 0 (threads summed): other processes' share of the lag.
            "generator_runqueue_wait_percent": round(100 * (after[3] - before[3]) / (t1 - t0), 1),
            "generator_loop_lag_ms_p50": round(percentile(lags, 0.5), 2),
            "generator_loop_lag_ms_p99": round(percentile(lags, 0.99), 2),
            "udp_rcvbuf_errors": after[4] - before[4],
            "generator_udp_drops": drops_between(before[5], after[5]),
            # Frames its publishers skipped, too far behind the clip's schedule (loadgen.MAX_CATCH_UP_S).
            "generator_frames_skipped": skipped,
        }
    )
    result["generator_saturated"] = generator_saturated(result)
    return result


async def run_config(
    sfu: Sfu,
    room: int,
    publishers: int,
    subscribers: int,
    clip: Clip,
    window_s: float,
    profile: Path | None = None,
    recorder: str = "headers",
) -> dict[str, Any]:
    await sfu.open_room(room, publishers)
    peers: list[tuple[Publisher, list[Subscriber]]] = []
    try:
        for feed in range(1, publishers + 1):
            publisher = Publisher(clip)
            await sfu.publish(room, feed, publisher)
            subs = []
            for index in range(subscribers):
                subscriber = Subscriber(recorder)
                await sfu.subscribe(room, feed, f"sub{feed}-{index}", subscriber)
                subs.append(subscriber)
            peers.append((publisher, subs))
        return await measure_window(sfu, peers, window_s, profile)
    finally:
        await close_room(sfu, room, peers)


async def close_room(sfu: Sfu, room: int, peers: list[tuple[Publisher, list[Subscriber]]]) -> None:
    for publisher, subs in peers:
        for subscriber in subs:
            await subscriber.close()
        await publisher.close()
    try:
        await sfu.close_room(room)
    except Exception as error:  # a failed clean-up must not lose the figures
        print(f"{sfu.name}: closing room {room} failed: {error}", file=sys.stderr)


async def ramp_subscribers(
    sfu: Sfu,
    room: int,
    steps: list[int],
    clip: Clip,
    window_s: float,
    recorder: str = "headers",
    logs: SfuLogs | None = None,
) -> dict[str, Any]:
    """One publisher and ever more subscribers of it in one room, a window measured at each step, until
    packets are lost (the SFU's CPU share and the generator's receive-buffer errors then say whose)."""
    rss_without_streams = rss_mib(sfu.pid)
    await sfu.open_room(room, 1)
    publisher = Publisher(clip)
    subscribers: list[Subscriber] = []
    rows: list[dict[str, Any]] = []
    try:
        await sfu.publish(room, 1, publisher)
        for step in steps:
            try:
                while len(subscribers) < step:
                    subscriber = Subscriber(recorder)
                    subscribers.append(subscriber)
                    await sfu.subscribe(room, 1, f"sub1-{len(subscribers) - 1}", subscriber)
            except Exception as error:
                # E.g. the SFU ended the feed (on the loaded machine the relay once answered "no feed"
                # mid-ramp): the steps measured so far are kept, the ramp ends here.
                print(f"{sfu.name} 1x{step}: {error!r}", file=sys.stderr, flush=True)
                rows.append({"subscribers": step, "error": repr(error)})
                if logs is not None:
                    logs.flag(sfu, f"room {room}, 1x{step}: {error!r}")
                break
            print(f"{sfu.name} 1x{step} ...", file=sys.stderr, flush=True)
            row = {"subscribers": step, **await measure_window(sfu, [(publisher, subscribers)], window_s)}
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
            if logs is not None and (why := window_failed(row)):
                logs.flag(sfu, f"room {room}, 1x{step}: {why}")
            # Zero loss is the criterion, whatever the generator's wake-up lag (other work on its core
            # delays arrivals, not counts): the SFU forwarded every packet. The first loss ends the ramp.
            if row["loss_percent"] != 0:
                break
    finally:
        await close_room(sfu, room, [(publisher, subscribers)])
    return {
        "rss_mib_without_streams": rss_without_streams,
        "steps": rows,
        **capacity_of(rss_without_streams, rows),
    }


def capacity_of(rss_without_streams: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Subscriber streams per core and memory per stream, from the steps with no loss. The SFU's share
    of its core and its RSS are fitted as a line over those steps: the slope is one subscriber stream's
    cost, the intercept what the publisher and the SFU's idle work cost. Streams per core is what fits in
    the rest of the core at that slope: measured only if the largest step used nearly the whole core, a
    projection otherwise (flagged)."""
    clean = [r for r in rows if r.get("loss_percent") == 0]
    if not clean:
        return {"steps_at_zero_loss": 0}
    largest = clean[-1]
    # Growth from before the publisher joined: includes the publisher's peer and what the first call
    # allocates once.
    from_zero = round((largest["sfu_rss_mib"] - rss_without_streams) / largest["subscribers"], 3)
    if len(clean) < 2:
        return {
            "steps_at_zero_loss": 1,
            "most_subscribers_at_zero_loss_measured": largest["subscribers"],
            "rss_mib_per_stream_from_zero": from_zero,
        }
    streams = [r["subscribers"] for r in clean]
    cpu = statistics.linear_regression(streams, [r["sfu_cpu_percent"] / 100 for r in clean])
    rss = statistics.linear_regression(streams, [r["sfu_rss_mib"] for r in clean])
    return {
        "steps_at_zero_loss": len(clean),
        "most_subscribers_at_zero_loss_measured": largest["subscribers"],
        "core_share_at_most_subscribers": round(largest["sfu_cpu_percent"] / 100, 3),
        "core_share_per_subscriber_stream": round(cpu.slope, 5),
        "core_share_without_subscribers": round(cpu.intercept, 4),
        "subscriber_streams_per_core_at_zero_loss": round((1 - cpu.intercept) / cpu.slope, 1),
        "streams_per_core_projected": largest["sfu_cpu_percent"] < 95,
        "rss_mib_per_stream": round(rss.slope, 3),
        "rss_mib_per_stream_from_zero": from_zero,
    }


def both_sfus(folder: Path, parley_loop: str) -> tuple[ParleyRelay, JanusVideoRoom]:
    parley_folder, janus_folder = folder / "parley", folder / "janus"
    parley_folder.mkdir()
    janus_folder.mkdir()
    return ParleyRelay(parley_folder, SFU_CPUS, parley_loop), JanusVideoRoom(janus_folder, SFU_CPUS)


async def run_capacity(
    steps: list[int],
    window_s: float,
    folder: Path,
    parley_loop: str,
    repeats: int,
    recorder: str = "headers",
    logs: SfuLogs | None = None,
) -> dict[str, Any]:
    """The subscriber ramp on each SFU in turn, who goes first alternating between repeats; both SFUs are
    freshly started, so the first repeat's memory is from zero streams of a new process."""
    clip = encode_clip()
    parley, janus = both_sfus(folder, parley_loop)
    ramps: dict[str, list[dict[str, Any]]] = {"parley": [], "janus": []}
    sfu: Sfu = parley
    try:
        await parley.start()
        sfu = janus
        await janus.start()
        room = 2000
        for repeat in range(repeats):
            for sfu in (parley, janus) if repeat % 2 == 0 else (janus, parley):
                room += 1
                ramps[sfu.name].append(
                    {
                        "repeat": repeat,
                        **await ramp_subscribers(sfu, room, steps, clip, window_s, recorder, logs),
                    }
                )
    except BaseException as error:
        if logs is not None:
            logs.flag(sfu, f"the run failed: {error!r}")
        raise
    finally:
        await parley.stop()
        await janus.stop()
        if logs is not None:
            logs.keep()
    return {name: {"ramps": mine, "median_over_repeats": ramp_medians(mine)} for name, mine in ramps.items()}


def ramp_medians(ramps: list[dict[str, Any]]) -> dict[str, float | None]:
    figures = (
        "subscriber_streams_per_core_at_zero_loss",
        "most_subscribers_at_zero_loss_measured",
        "rss_mib_per_stream",
        "rss_mib_per_stream_from_zero",
    )
    return {figure: median([ramp.get(figure) for ramp in ramps]) for figure in figures}


async def run(
    configs: list[tuple[int, int]],
    window_s: float,
    folder: Path,
    repeats: int = 1,
    profile: Path | None = None,
    parley_loop: str = "uvloop",
    recorders: tuple[str, ...] = ("headers",),
    logs: SfuLogs | None = None,
) -> dict[str, Any]:
    """Each configuration with each of `recorders` (the generator's subscribers; more than one compares
    them, interleaved, on the same SFU processes) and each SFU in turn. The log of an SFU whose window
    forwarded nothing, or during whose turn the run failed, is kept (`logs`)."""
    clip = encode_clip()
    parley, janus = both_sfus(folder, parley_loop)
    results: list[dict[str, Any]] = []
    sfu: Sfu = parley
    try:
        await parley.start()
        sfu = janus
        await janus.start()
        room = 1000
        for repeat in range(repeats):
            for (publishers, subscribers), recorder in itertools.product(configs, recorders):
                row: dict[str, Any] = {
                    "repeat": repeat,
                    "publishers": publishers,
                    "subscribers_per_publisher": subscribers,
                    "recorder": recorder,
                }
                # Each alone on its core while measured; who goes first alternates between repeats.
                for sfu in (parley, janus) if repeat % 2 == 0 else (janus, parley):
                    room += 1
                    print(
                        f"{sfu.name} {publishers}x{subscribers} {recorder} #{repeat} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    stacks = None
                    if profile is not None and sfu is parley:
                        stacks = profile / f"parley-{publishers}x{subscribers}-{recorder}-{repeat}.txt"
                    row[sfu.name] = await run_config(
                        sfu, room, publishers, subscribers, clip, window_s, stacks, recorder
                    )
                    print(json.dumps(row[sfu.name]), file=sys.stderr, flush=True)
                    if logs is not None and (why := window_failed(row[sfu.name])):
                        logs.flag(sfu, f"room {room}, {publishers}x{subscribers} #{repeat}: {why}")
                p, j = (
                    row["parley"]["sfu_cpu_us_per_forwarded_packet"],
                    row["janus"]["sfu_cpu_us_per_forwarded_packet"],
                )
                row["cpu_per_packet_ratio_parley_to_janus"] = round(p / j, 2) if p and j else None
                results.append(row)
    except BaseException as error:
        if logs is not None:
            logs.flag(sfu, f"the run failed: {error!r}")
        raise
    finally:
        await parley.stop()
        await janus.stop()
        if logs is not None:
            logs.keep()
    return {
        "clip": {
            "codec": "VP8",
            "width": clip.width,
            "height": clip.height,
            "fps": 30,
            "bitrate_bps": round(clip.bitrate),
            "loop_frames": len(clip.frames),
            "rtp_packets_per_frame_mean": round(sum(clip.packets) / len(clip.packets), 2),
        },
        "results": results,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration (and recorder, when a run compared them), medians over the repeats in which the
    generator kept up with both SFUs."""
    summary: dict[str, dict[str, Any]] = {}
    compared = len({recorder_of(r) for r in rows}) > 1
    for name in dict.fromkeys(config_name(r, compared) for r in rows):
        mine = [r for r in rows if config_name(r, compared) == name]
        usable = [
            r for r in mine if not (r["parley"]["generator_saturated"] or r["janus"]["generator_saturated"])
        ]
        ratios = [r["cpu_per_packet_ratio_parley_to_janus"] for r in usable]
        summary[name] = {
            "repeats": len(mine),
            "repeats_generator_kept_up": len(usable),
            "parley_us_median": median([r["parley"]["sfu_cpu_us_per_forwarded_packet"] for r in usable]),
            "janus_us_median": median([r["janus"]["sfu_cpu_us_per_forwarded_packet"] for r in usable]),
            "ratio_median": median(ratios),
            "ratio_min": min((r for r in ratios if r is not None), default=None),
            "ratio_max": max((r for r in ratios if r is not None), default=None),
            "generator_cpu_percent_median": median(
                [r[sfu]["generator_cpu_percent"] for r in mine for sfu in ("parley", "janus")]
            ),
        }
    return summary


def recorder_of(row: dict[str, Any]) -> str:
    # Results written before the header recorder existed used aiortc's receive path.
    return str(row.get("recorder", "aiortc"))


def config_name(row: dict[str, Any], with_recorder: bool = False) -> str:
    name = f"{row['publishers']}x{row['subscribers_per_publisher']}"
    return f"{name} {recorder_of(row)}" if with_recorder else name


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--configs", default="1x1,1x4,1x16,2x16,4x16", help="PxS,... publishers x subscribers each"
    )
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each steady window")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the configurations")
    parser.add_argument(
        "--parley-loop",
        choices=("asyncio", "uvloop"),
        default="uvloop",
        help="the relay's event loop (PARLEY_EVENT_LOOP): uvloop as shipped, or asyncio",
    )
    parser.add_argument(
        "--recorder",
        default="headers",
        help="the generator's subscribers: headers (RTP headers read off the SRTP datagrams, as shipped) "
        "or aiortc (aiortc's whole receive path, the generator before 2026-12-06); both, comma-separated, "
        "measures each configuration with each in turn",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--profile", type=Path, help="folder for py-spy stacks of the relay (needs py-spy in the venv)"
    )
    parser.add_argument(
        "--capacity",
        help="N,N,...: instead of the configurations, one publisher and this many subscribers in turn, "
        "for subscriber streams per core at 0 %% loss and memory per stream (default output "
        "results/relay_capacity.json)",
    )
    args = parser.parse_args()
    recorders = tuple(args.recorder.split(","))
    if not set(recorders) <= set(RECORDERS):
        parser.error(f"--recorder: one or more of {', '.join(RECORDERS)}")
    if args.capacity:
        if len(recorders) > 1:
            parser.error("--capacity takes one --recorder")
        capacity(args)
        return
    configs = [tuple(int(n) for n in config.split("x")) for config in args.configs.split(",")]
    os.sched_setaffinity(0, GENERATOR_CPUS)
    # Other sessions' work shares this machine: the load before and after (machine()) says how much.
    load_average_at_start = os.getloadavg()
    logs = SfuLogs(args.output)
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as folder:
        measured = uvloop.run(
            run(
                [(p, s) for p, s in configs],
                args.window,
                Path(folder),
                args.repeat,
                args.profile,
                args.parley_loop,
                recorders,
                logs,
            )
        )
    summary = summarise(measured["results"])
    headline = summary.get("1x16", {}).get("ratio_median")
    scaling = {
        sfu: {name: summary[name][f"{sfu}_us_median"] for name in ("1x1", "1x4", "1x16") if name in summary}
        for sfu in ("parley", "janus")
    }
    result = {
        "benchmark": "media relay vs Janus VideoRoom: CPU per forwarded packet, loss, delay",
        "machine": machine(),
        "setup": {
            "janus": "Debian janus 1.1.2, VideoRoom, HTTP API on 127.0.0.1, getifaddrs shim for loopback ICE",
            "parley": f"python -m services.relay ({args.parley_loop} event loop), Tansu broker for metering",
            "cpus": {"sfu": sorted(SFU_CPUS), "generator_and_broker": sorted(GENERATOR_CPUS)},
            "generator": GENERATOR,
            "recorders": list(recorders),
            "window_s": args.window,
            "load_average_at_start": load_average_at_start,
        },
        **measured,
        "summary_cpu_us_per_forwarded_packet": summary,
        "headline_cpu_per_packet_ratio_parley_to_janus_1x16": headline,
        "sfu_logs_kept": logs.kept,
        "scaling_cpu_us_per_packet": scaling,
        "target": (
            "Parley within 2x Janus at 1x16 (goal: below 1), loss < 0.5 %, p99 < 20 ms beyond one frame"
        ),
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def capacity(args: argparse.Namespace) -> None:
    steps = [int(n) for n in args.capacity.split(",")]
    output = args.output if args.output != DEFAULT_OUTPUT else HERE / "results" / "relay_capacity.json"
    os.sched_setaffinity(0, GENERATOR_CPUS)
    load_average_at_start = os.getloadavg()
    logs = SfuLogs(output)
    with tempfile.TemporaryDirectory(prefix="relay-capacity-") as folder:
        measured = uvloop.run(
            run_capacity(steps, args.window, Path(folder), args.parley_loop, args.repeat, args.recorder, logs)
        )
    result = {
        "benchmark": "relay vs Janus VideoRoom: subscriber streams per core at 0 % loss, memory per stream",
        "machine": machine(),
        "setup": {
            "janus": "Debian janus 1.1.2, VideoRoom, HTTP API on 127.0.0.1, getifaddrs shim for loopback ICE",
            "parley": f"python -m services.relay, one worker ({args.parley_loop} event loop)",
            "cpus": {"sfu": sorted(SFU_CPUS), "generator_and_broker": sorted(GENERATOR_CPUS)},
            "stream": "one subscriber of a 1.5 Mbit/s 640x480 VP8 feed at 30 frames/s, video only",
            "generator": GENERATOR,
            "recorder": args.recorder,
            "steps": steps,
            "repeats": args.repeat,
            "window_s": args.window,
            "load_average_at_start": load_average_at_start,
        },
        **measured,
        "sfu_logs_kept": logs.kept,
    }
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
