"""The Markdown table of bench/results/relay_vs_janus.json for bench/README.md: per configuration, the
median of each figure over the repeats in which the generator kept up, both SFUs side by side.

    .venv/bin/python bench/relay/table.py [bench/results/relay_vs_janus.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[1] / "results" / "relay_vs_janus.json"
COLUMNS = (
    ("pkt/s fwd", "forwarded_packets_per_s", 0),
    ("CPU µs/pkt", "sfu_cpu_us_per_forwarded_packet", 1),
    ("CPU % of core", "sfu_cpu_percent", 1),
    ("loss %", "loss_percent", 2),
    ("delay p50 ms", "delay_ms_p50", 1),
    ("delay p99 ms", "delay_ms_p99", 1),
    ("RSS MiB", "sfu_rss_mib", 0),
    ("gen CPU %", "generator_cpu_percent", 0),
    ("gen lag p99 ms", "generator_loop_lag_ms_p99", 1),
    ("gen wait %", "generator_runqueue_wait_percent", 0),
    ("gen drops", "generator_udp_drops", 0),
    ("rcvbuf errs (machine)", "udp_rcvbuf_errors", 0),
)


def med(rows: list[dict[str, Any]], sfu: str, key: str, digits: int) -> str:
    """The median, or a dash for a figure the JSON's version of the bench did not record."""
    values = [r[sfu][key] for r in rows if r[sfu].get(key) is not None]
    return f"{statistics.median(values):.{digits}f}" if values else "—"


def main() -> None:
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT).read_text())
    rows = data["results"]
    # Results from before the generator's header recorder used aiortc's receive path.
    recorders = {r.get("recorder", "aiortc") for r in rows}
    configs = dict.fromkeys(
        (r["publishers"], r["subscribers_per_publisher"], r.get("recorder", "aiortc")) for r in rows
    )
    print("| PxS | SFU | runs | " + " | ".join(title for title, _key, _digits in COLUMNS) + " | ratio |")
    print("|" + " --- |" * (len(COLUMNS) + 4))
    for publishers, subscribers, recorder in configs:
        mine = [
            r
            for r in rows
            if (r["publishers"], r["subscribers_per_publisher"], r.get("recorder", "aiortc"))
            == (publishers, subscribers, recorder)
            and not (r["parley"]["generator_saturated"] or r["janus"]["generator_saturated"])
        ]
        if not mine:
            continue
        name = f"{publishers}x{subscribers}" + (f" {recorder}" if len(recorders) > 1 else "")
        ratio = data["summary_cpu_us_per_forwarded_packet"][name]
        for sfu in ("parley", "janus"):
            cells = [med(mine, sfu, key, digits) for _title, key, digits in COLUMNS]
            spread = (
                f"{ratio['ratio_median']} ({ratio['ratio_min']}-{ratio['ratio_max']})"
                if sfu == "parley"
                else ""
            )
            runs = f"{len(mine)}/{ratio['repeats']}"
            print(f"| {name} | {sfu} | {runs} | " + " | ".join(cells) + f" | {spread} |")


if __name__ == "__main__":
    main()
