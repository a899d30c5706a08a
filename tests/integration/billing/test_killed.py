"""The same generated day while the billing process is SIGKILLed 50 times at random moments. Before each
kill a fiftieth of the facts is published; then, three times in four, the test waits until the new process
has been given its partitions and kills it 0 to 0.5 s later (while it reads, inside or between its
transactions of 100 records), and once in four it kills it 0.1 to 2 s after spawning it (in start-up or
while it joins its group). After the last kill one more start reads what is left, and the figures equal the
ground truth to the millisecond.

Bounded by process start-up: 155 s on this shared 2-core machine (38 of the 50 kills came after the
process had been given its partitions); it prints both; 15 minutes at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from parley.billing.v1 import billing_pb2_grpc

from services.core.config import ServiceName
from services.core.processes import python_module, spawn
from tests.integration.billing.generator import generate, shuffled_with_duplicates
from tests.integration.billing.helpers import end_offsets, overview, publish, wait_until_read
from tests.testing import Instance, start_platform

pytestmark = [pytest.mark.integration, pytest.mark.system]

KILLS = 50
SEED = 13


@pytest.mark.timeout(900)
async def test_killed_fifty_times_still_counts_exactly_once(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/billing.db"
    day = datetime.now(UTC).date() - timedelta(days=2)
    scenario = generate(SEED, day, tag=f"k{uuid.uuid4().hex[:6]}")
    delivered = shuffled_with_duplicates(scenario.facts, seed=SEED)
    # Small transactions, so that many kills land inside one.
    billing = Instance(ServiceName.BILLING, process=True, settings={"billing": {"batch_records": 100}})
    # A killed process leaves its group member behind: a short session lets the next one in sooner.
    settings = {
        "billing": {
            "lateness_s": 40 * 86_400,
            "group_id": f"billing-{uuid.uuid4()}",
            "session_timeout_ms": 1500,
        }
    }
    started = time.monotonic()
    async with start_platform(tmp_path, billing, database_url=database_url, settings=settings) as platform:
        service = platform[ServiceName.BILLING]
        assert service.log_path is not None
        rng = random.Random(SEED)
        chunk = -(-len(delivered) // KILLS)
        since = 0
        for kill in range(KILLS):
            await publish(platform.kafka, delivered[kill * chunk : (kill + 1) * chunk])
            if kill % 4 == 3:
                await asyncio.sleep(rng.uniform(0.1, 2.0))
            else:
                await _until_assigned(service.log_path, since)
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            await platform.kill(ServiceName.BILLING)
            if kill < KILLS - 1:
                # Spawned without waiting for it to serve: the next kill may come at any point of its life.
                since = service.log_path.stat().st_size
                service.process = spawn(
                    python_module("services.billing"), env=service.env, log_path=service.log_path
                )
        await platform.restart(ServiceName.BILLING)
        await wait_until_read(database_url, await end_offsets(platform.kafka), timeout_s=240)
        stub = platform.stub(billing_pb2_grpc.BillingServiceStub, ServiceName.BILLING)
        for biz_name, truth in scenario.truth.items():
            assert await overview(stub, biz_name, day) == truth.as_json(), biz_name
        assigned = service.log_path.read_text().count("billing_partitions_assigned")
    print(
        f"{KILLS} kills ({assigned - 1} after partitions were assigned), {len(delivered)} facts delivered, "
        f"{time.monotonic() - started:.0f} s"
    )


async def _until_assigned(log_path: Path, since: int, timeout_s: float = 60.0) -> None:
    """Until the process spawned when the log was `since` bytes long has logged its partition assignment
    (or the time is up: the kill then lands in a slow start-up)."""

    def assigned() -> bool:
        with log_path.open("rb") as log:
            log.seek(since)
            return b"billing_partitions_assigned" in log.read()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while not await asyncio.to_thread(assigned):
                await asyncio.sleep(0.05)
