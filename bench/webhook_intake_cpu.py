"""CPU of the webhook intake per fact that makes no delivery (issue #16): ParticipantJoined facts of an
app with no callback URL, no endpoint subscribed, as every join of the join bench brings the dispatcher.

    .venv/bin/python bench/webhook_intake_cpu.py [--before REF] [--rounds 5] [--facts 2000] [--batch 4]

Runs `Intake.on_events` in this process on a migrated SQLite database, with this tree's intake and the
intake of git ref REF (default main) loaded beside it, in turns (A B A B ...), and prints the CPU time
(`time.process_time`, the aiosqlite thread included) per fact of each. In-process and with the database on
a file, so it measures the intake's own work, not the consumer's fetches or commits; under load compare
only the two figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from machine import machine  # noqa: E402
from parley.licence.v1 import licence_pb2  # noqa: E402
from parley.rooms.v1 import events_pb2 as room_events  # noqa: E402

from services.core.db import create_engine  # noqa: E402
from services.core.events import Envelope, RawEvent  # noqa: E402
from services.core.migrations import upgrade_to_head  # noqa: E402
from services.core.timestamps import timestamp  # noqa: E402
from services.core.topics import Topic  # noqa: E402
from services.webhooks.apps import AppDirectory  # noqa: E402
from services.webhooks.policy import RetryPolicy  # noqa: E402
from tests.webhook_deliveries import idle_dispatcher, offline_store  # noqa: E402


class Licence:
    """GetApp for the one app, which set no callback URL."""

    async def GetApp(self, request: licence_pb2.GetAppRequest, **call_options: Any) -> licence_pb2.App:
        return licence_pb2.App(biz_name=request.biz_name, app_id="app-1", workspace_id="ws")


def intake_class(source: str, name: str) -> Any:
    """The `Intake` class of an intake.py's source, loaded as a module of its own."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(name, file.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.Intake


def joins(count: int, ids: itertools.count[int]) -> list[RawEvent]:
    facts = []
    for _ in range(count):
        number = next(ids)
        event = room_events.ParticipantJoined(
            room_id=f"room-{number // 2}",
            biz_name="biz1",
            uid=f"u{number}",
            joined_at=timestamp(datetime.now(UTC)),
        )
        envelope = Envelope(
            id=f"ev-{number}",
            type=event.DESCRIPTOR.full_name,
            source="//parley/rooms",
            time="2026-12-06T12:00:00Z",
            topic=Topic.ROOM.value,
            key=f"room-{number // 2}",
        )
        facts.append(RawEvent(event.SerializeToString(), envelope))
    return facts


def source_at(ref: str) -> str:
    """services/webhooks/intake.py as it is at git `ref`."""
    shown = subprocess.run(
        ["git", "show", f"{ref}:services/webhooks/intake.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return shown.stdout


async def main(before: str, old_source: str, rounds: int, facts: int, batch: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'webhooks.db'}")
        await upgrade_to_head(engine, "services.webhooks")
        store = offline_store(engine)
        dispatcher, sender = idle_dispatcher(store)
        apps = AppDirectory(Licence(), ttl_s=3600)  # type: ignore[arg-type]
        intakes = {
            before: intake_class(old_source, "intake_before")(store, apps, RetryPolicy([0]), dispatcher),
            "this tree": intake_class((ROOT / "services/webhooks/intake.py").read_text(), "intake_after")(
                store, apps, RetryPolicy([0]), dispatcher
            ),
        }
        ids = itertools.count()
        for intake in intakes.values():  # warm: the app fetched, statements compiled
            await intake.on_events(joins(batch, ids))
        runs: dict[str, list[float]] = {name: [] for name in intakes}
        for _ in range(rounds):
            for name, intake in intakes.items():
                batches = [joins(batch, ids) for _ in range(facts // batch)]
                started = time.process_time()
                for events in batches:
                    await intake.on_events(events)
                runs[name].append((time.process_time() - started) / (len(batches) * batch) * 1e6)
        await sender.close()
        await engine.dispose()
    result = json.dumps(
        {
            "benchmark": "webhook intake CPU per fact that makes no delivery (in process, SQLite)",
            "machine": machine(),
            "facts_per_round": facts,
            "batch": batch,
            "cpu_us_per_fact": {name: [round(v, 1) for v in values] for name, values in runs.items()},
            "median_us_per_fact": {name: round(statistics.median(v), 1) for name, v in runs.items()},
        },
        indent=2,
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="main")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--facts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "webhook_intake_cpu.json")
    args = parser.parse_args()
    result = asyncio.run(main(args.before, source_at(args.before), args.rounds, args.facts, args.batch))
    args.output.write_text(result + "\n")
    print(result)
