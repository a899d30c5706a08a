"""Exactly-once consumption of billing's topics: rows and offsets in one database transaction.

The other services consume through FastStream with Kafka-committed offsets (at-least-once). Billing
uses aiokafka's consumer directly (docs/decisions.md): it needs batches of records across partitions
and a `ConsumerRebalanceListener` that, when partitions are assigned, seeks each one to the offset
stored in billing's database beside the rows it produced. The offset committed to Kafka afterwards is
only a hint for monitoring lag; it is never read back.

A crash at any point either loses a whole uncommitted batch (re-read from the stored offsets) or
leaves it committed with its offsets (never re-read); rows are keyed by the inputs' stable ids, so a
duplicate published twice, or a batch re-read after a rebalance, counts once either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind
from parley.relay.v1 import metering_pb2

from services.billing.inputs import Batch
from services.billing.ledger import UsageLedger
from services.core.events import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS

log = structlog.get_logger(__name__)

RETRY_PAUSE_S = 1.0
# Ticks are many and untraced per record; each other fact gets a consumer span in its producer's trace.
_UNTRACED = metering_pb2.MeteringTick.DESCRIPTOR.full_name


class _ResumeFromDatabase(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ExactlyOnceConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Nothing to save: every batch committed its offsets with its rows.
        pass

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._owner.resume(assigned)


class ExactlyOnceConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        ledger: UsageLedger,
        *,
        group_id: str,
        topics: Sequence[str],
        client_id: str = "parley-billing",
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        max_records: int = 5000,
        linger_ms: int = 250,
        fetch_wait_ms: int = 200,
        tracer: trace.Tracer | None = None,
        on_committed: Callable[[int], None] | None = None,
    ) -> None:
        """`on_committed(ticks)` hears how many distinct ticks each committed batch held (metrics)."""
        self._ledger = ledger
        self._tracer = tracer or trace.get_tracer(__name__)
        self._on_committed = on_committed
        self._topics = list(topics)
        self._max_records = max_records
        self._linger_s = linger_ms / 1000
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=min(HEARTBEAT_INTERVAL_MS, session_timeout_ms // 3),
            fetch_max_wait_ms=fetch_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None
        self.assigned = asyncio.Event()
        self.applied_batches = 0

    async def start(self) -> None:
        """Join the group and read in the background: a join waits for the group to rebalance (after a
        member died without leaving, until its session times out), and the service serves meanwhile."""
        self._consumer.subscribe(self._topics, listener=_ResumeFromDatabase(self))
        self._task = asyncio.create_task(self._run(), name="billing-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._consumer.stop()

    async def resume(self, assigned: Sequence[TopicPartition]) -> None:
        """Seek every assigned partition to where the database says the last committed batch ended."""
        stored = await self._ledger.stored_offsets((tp.topic, tp.partition) for tp in assigned)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
        log.info("billing_partitions_assigned", partitions=len(assigned), stored=len(stored))
        self.assigned.set()

    async def _run(self) -> None:
        await self._consumer.start()
        while True:
            records = await self._consumer.getmany(timeout_ms=1000, max_records=self._max_records)
            if not records:
                continue
            records = await self._fill(records)
            batch = Batch()
            spans: list[Span] = []
            for tp, messages in records.items():
                for message in messages:
                    headers = {key: value.decode(errors="replace") for key, value in message.headers}
                    ce_type = headers.get("ce_type")
                    if ce_type is None or message.value is None:
                        continue
                    if (
                        batch.add(ce_type, message.value)
                        and ce_type != _UNTRACED
                        and "traceparent" in headers
                    ):
                        spans.append(self._span(tp, message.offset, headers))
                # The highest: a partition taken away and given back during the linger is read again
                # from its stored offset, after what this batch already holds of it.
                batch.offsets[(tp.topic, tp.partition)] = max(message.offset for message in messages) + 1
            try:
                await self._apply(batch)
            finally:
                for span in spans:
                    span.end()
            if self._on_committed is not None:
                self._on_committed(len(batch.ticks))
            with contextlib.suppress(KafkaError):
                await self._consumer.commit(
                    {
                        TopicPartition(topic, partition): offset
                        for (topic, partition), offset in batch.offsets.items()
                    }
                )

    async def _fill(
        self, records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Add what arrives within the linger to a batch that is not full: one transaction and one offset
        commit for the facts of many joins, not for each. aiokafka keeps fetching in the background
        meanwhile, so one read after the pause takes what came."""
        count = sum(len(messages) for messages in records.values())
        if count >= self._max_records or self._linger_s <= 0:
            return records
        await asyncio.sleep(self._linger_s)
        more = await self._consumer.getmany(timeout_ms=0, max_records=self._max_records - count)
        for tp, messages in more.items():
            records.setdefault(tp, []).extend(messages)
        return records

    def _span(self, tp: TopicPartition, offset: int, headers: dict[str, str]) -> Span:
        """A consumer span in the trace of the request that produced the fact, until its batch commits."""
        return self._tracer.start_span(
            f"{tp.topic} process",
            context=propagate.extract({"traceparent": headers["traceparent"]}),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": tp.topic,
                "messaging.kafka.destination.partition": tp.partition,
                "messaging.kafka.message.offset": offset,
                "messaging.message.id": headers.get("ce_id", ""),
            },
        )

    async def _apply(self, batch: Batch) -> None:
        """Write the batch; a database that fails is retried with the same batch (idempotent) until it
        answers, so the partitions' positions never run ahead of what is stored."""
        while True:
            try:
                await self._ledger.apply(batch)
                self.applied_batches += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("billing_batch_failed", rows=len(batch), exc_info=True)
                await asyncio.sleep(RETRY_PAUSE_S)
