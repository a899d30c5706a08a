"""Two versions of the webhook dispatcher, interleaved: bench/webhooks.py run by turns from this tree
("after") and from another (a `git archive` of the version before, "before"), with this tree's .venv, on
each database asked, `--pairs` times (who goes first alternates), the load average before each run.

    git archive main | tar -x -C /tmp/before
    .venv/bin/python bench/webhooks_ab.py --before /tmp/before [--databases sqlite,postgresql] [--pairs 2]
                                          [--output bench/results/webhooks_ab.json]

Both run this tree's bench script (its publisher, receiver and platform start-up); the services it starts
(`python -m services.webhooks`, ...) run from the tree measured: its directory is their working directory
and first on PYTHONPATH. The generated protos come from this .venv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_once(tree: Path, database: str, rate: int, rooms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "run.json"
        command = [sys.executable, str(ROOT / "bench" / "webhooks.py"), "--output", str(output)]
        command += ["--rate", str(rate), "--rooms", str(rooms)]
        if database == "postgresql":
            command += ["--database-url", "postgresql"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
        load_before = os.getloadavg()
        subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        (result,) = json.loads(output.read_text()).values()
    result["load_average_before_run"] = [round(value, 2) for value in load_before]
    return result


def summary(result: dict[str, Any]) -> str:
    stages = (
        "fact_to_receiver_ms",
        "fact_to_scheduled_ms",
        "scheduled_to_delivered_ms",
        "room_chain_step_ms",
    )
    latencies = ", ".join(
        f"{stage} {result[stage].get('p50')} / {result[stage].get('p99')}" for stage in stages
    )
    return (
        f"{result['deliveries_per_s']}/s, p50 / p99: {latencies}; "
        f"CPU per delivery {result['dispatcher_cpu_ms_per_delivery']} ms, "
        f"load {result['load_average_before_run'][0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "webhooks_ab.json")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for database in args.databases.split(","):
            order = ["before", "after"] if pair % 2 == 0 else ["after", "before"]
            for version in order:
                result = run_once(trees[version], database, args.rate, args.rooms)
                runs.append({"version": version, "pair": pair, **result})
                print(f"{database} {version}: {summary(result)}", flush=True)
                # Written after every run: a run cut short keeps the ones before it.
                record = {"trees": {name: str(tree) for name, tree in trees.items()}, "runs": runs}
                args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
