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
    ("rcvbuf errs", "udp_rcvbuf_errors", 0),
)


def med(rows: list[dict[str, Any]], sfu: str, key: str) -> float:
    return float(statistics.median(r[sfu][key] for r in rows if r[sfu].get(key) is not None))


def main() -> None:
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT).read_text())
    rows = data["results"]
    configs = dict.fromkeys((r["publishers"], r["subscribers_per_publisher"]) for r in rows)
    print("| PxS | SFU | runs | " + " | ".join(title for title, _key, _digits in COLUMNS) + " | ratio |")
    print("|" + " --- |" * (len(COLUMNS) + 4))
    for publishers, subscribers in configs:
        mine = [
            r
            for r in rows
            if (r["publishers"], r["subscribers_per_publisher"]) == (publishers, subscribers)
            and not (r["parley"]["generator_saturated"] or r["janus"]["generator_saturated"])
        ]
        if not mine:
            continue
        ratio = data["summary_cpu_us_per_forwarded_packet"][f"{publishers}x{subscribers}"]
        for sfu in ("parley", "janus"):
            cells = [f"{med(mine, sfu, key):.{digits}f}" for _title, key, digits in COLUMNS]
            spread = (
                f"{ratio['ratio_median']} ({ratio['ratio_min']}-{ratio['ratio_max']})"
                if sfu == "parley"
                else ""
            )
            runs = f"{len(mine)}/{ratio['repeats']}"
            print(f"| {publishers}x{subscribers} | {sfu} | {runs} | " + " | ".join(cells) + f" | {spread} |")


if __name__ == "__main__":
    main()
