"""The webhook dispatcher's database work per delivery, statement by statement, on SQLite: what one intake
transaction (write the deliveries, count what is pending of their queues, lease them) and one group commit
(the attempts, the deliveries' outcomes, the outcome facts in the outbox) cost for a batch, in this one
process with nothing else running in it. CPU is `time.process_time()` (every thread: aiosqlite's, where
SQLite runs, and the event loop's), so it is repeatable on a loaded machine where wall time is not.

    .venv/bin/python bench/webhook_statements.py [--batch 100] [--rounds 30]

Prints JSON: CPU per delivery over the whole, and per statement (the first statement of a transaction
carries its BEGIN). Not the dispatcher's path as a whole (no Kafka, no HTTP, no scheduling): the share of
its 0.55-0.7 ms per delivery that is the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db import create_engine
from services.core.migrations import upgrade_to_head
from services.webhooks.policy import Outcome
from services.webhooks.store import AttemptRecord, Claim, WebhookStore
from tests.webhook_deliveries import joined_delivery, offline_store

ROOMS = 100
LEASE = timedelta(seconds=30)


class StatementCpu:
    """CPU spent in each kind of statement, by its first line, while installed."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self._execute = AsyncConnection.execute

    def install(self) -> None:
        execute = self._execute
        spent = self.spent

        async def timed(connection: AsyncConnection, statement: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return await execute(connection, statement, *args, **kwargs)
            finally:
                spent[str(statement).split("\n", 1)[0][:60]] += time.process_time() - started

        AsyncConnection.execute = timed  # type: ignore[method-assign]

    def remove(self) -> None:
        AsyncConnection.execute = self._execute  # type: ignore[method-assign]


async def one_batch(store: WebhookStore, size: int) -> None:
    """An intake transaction for `size` facts over the rooms, then the group commit of their outcomes."""
    now = datetime.now(UTC)
    new = [
        joined_delivery(str(uuid.uuid4()), f"room-{i % ROOMS}", now, endpoint_id="ep_1", biz_name="biz1")
        for i in range(size)
    ]
    token = str(uuid.uuid4())
    async with store.begin() as connection:
        written = await store.enqueue_many(connection, new, first_attempt_at=now, now=now)
        await store.pending_counts(connection, list({(r.endpoint_id, r.ordering_key) for r in written}))
        await store.lease_new(connection, [r.id for r in written], token, now + LEASE)
    details = {delivery.event_id: delivery for delivery in new}
    records = [
        AttemptRecord(
            Claim.leased(row, details[row.event_id], token), 1, now, 5, 200, Outcome.DELIVERED, "", None
        )
        for row in written
    ]
    async with store.begin() as connection:
        await store.save_attempts(connection, records)


async def measure(batch: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        engine = create_engine(f"sqlite+aiosqlite:///{data_dir}/webhooks.db")
        await upgrade_to_head(engine, "services.webhooks")
        store = offline_store(engine)
        for _ in range(5):  # warm: statement caches, the file's first pages
            await one_batch(store, batch)
        statements = StatementCpu()
        statements.install()
        started = time.process_time()
        try:
            for _ in range(rounds):
                await one_batch(store, batch)
        finally:
            statements.remove()
        total = time.process_time() - started
        await engine.dispose()
    deliveries = batch * rounds
    return {
        "batch": batch,
        "rounds": rounds,
        "cpu_ms_per_delivery": round(total * 1000 / deliveries, 3),
        "cpu_us_per_delivery_by_statement": {
            name: round(spent * 1e6 / deliveries, 1) for name, spent in statements.spent.most_common()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.batch, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
