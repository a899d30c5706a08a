"""Wires billing metering together: the exactly-once consumer of metering ticks and room and session
facts, the day closer, prepaid charging, the outbox of account status, and BillingService."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from parley.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.accounts import Accounts, Rating
from services.billing.consumer import ExactlyOnceConsumer
from services.billing.grpc_api import BillingServicer
from services.billing.ledger import UsageLedger, utc_now
from services.billing.store import open_engine
from services.billing.store import outbox as outbox_table
from services.billing.usage import UsageStatistics
from services.core.config import ServiceName
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.core.service import ServiceRuntime
from services.core.topics import Topic

log = structlog.get_logger(__name__)

# Metering ticks, rooms and participants, client sessions. Feed facts are not read: published and
# subscribed time comes from the ticks, which count media that flowed, not negotiation (docs/billing.md).
TOPICS = (Topic.METERING.value, Topic.ROOM.value, Topic.SESSION.value)


class Periodic:
    """Runs `work` every `interval_s` until stopped; a round that fails is logged and the next one runs."""

    def __init__(self, name: str, work: Callable[[], Awaitable[object]], interval_s: float) -> None:
        self._name = name
        self._work = work
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("billing_round_failed", task=self._name, exc_info=True)
            await asyncio.sleep(self._interval_s)


@dataclass(frozen=True)
class Billing:
    """What tests reach: the ledger, accounts and the consumer."""

    ledger: UsageLedger
    accounts: Accounts
    consumer: ExactlyOnceConsumer


def build(runtime: ServiceRuntime) -> Billing:
    settings = runtime.settings.billing
    engine = open_engine(runtime.settings.database_url_for(ServiceName.BILLING))
    # Whatever commits a staged fact wakes the outbox (the consumer's batches, prepaid charging, the day
    # closer, account changes); its poll only finds what was left (services/core/outbox.py).
    outbox = Outbox(outbox_table, engine, runtime.events)
    rating = Rating(outbox)

    def committed(ticks: int) -> None:
        # A batch's late usage may have changed an account's status (`Rating.settle`, staged in it).
        outbox.notify()
        runtime.metrics.billing_ticked("committed", ticks)

    ledger = UsageLedger(engine, rating, lateness=timedelta(seconds=settings.lateness_s), clock=utc_now)
    accounts = Accounts(engine, rating, outbox, utc_now)
    consumer = ExactlyOnceConsumer(
        runtime.settings.kafka.bootstrap_servers,
        ledger,
        group_id=settings.group_id,
        topics=TOPICS,
        max_records=settings.batch_records,
        linger_ms=settings.batch_linger_ms,
        session_timeout_ms=settings.session_timeout_ms,
        tracer=runtime.tracer_provider.get_tracer("services.billing.consumer"),
        on_committed=committed,
    )

    async def charge_prepaid() -> None:
        await accounts.rate_open_days()
        outbox.notify()

    async def close_days() -> None:
        if await ledger.close_due_days():
            outbox.notify()

    rater = Periodic("billing-prepaid", charge_prepaid, settings.rating_interval_s)
    closer = Periodic("billing-days", close_days, settings.close_interval_s)

    async def migrate() -> None:
        await upgrade_to_head(engine, "services.billing")

    runtime.on_migrate(migrate)
    for part in (outbox, consumer, rater, closer):
        runtime.on_ready(part.start)
    runtime.on_stop(engine.dispose)
    for part in (outbox, consumer, rater, closer):
        runtime.on_stop(part.stop)

    runtime.grpc.add_servicer(
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        BillingServicer(UsageStatistics(engine, utc_now), accounts),
        billing_pb2.DESCRIPTOR.services_by_name["BillingService"],
    )
    return Billing(ledger, accounts, consumer)
