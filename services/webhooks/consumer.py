"""The intake's consumer: aiokafka's own, reading ahead while a batch is being written.

FastStream's batch subscriber asks for the next batch only once the handler returned, and aiokafka fetches
nothing while fetched records wait unconsumed (then only after its 100 ms prefetch backoff): a fact that
came while one batch was being written waited for that write, the backoff and the next write. Here a reader
takes records from aiokafka as they come (so aiokafka keeps fetching), and a writer hands everything read
so far to the handler as one batch as soon as the batch before it is written. A batch's offsets are
committed after the handler returned (write before acknowledge); a handler that raises gets the same batch
again after a pause (handlers are idempotent on `Envelope.id`), so a partition's position never runs ahead
of what is written. Offsets go to the broker at most every COMMIT_INTERVAL_S (and before partitions are
given up or the consumer stops), not after every batch: most batches write nothing (their facts make no
delivery) and an offset commit cost about as much as the fetch; a process killed meanwhile reads up to that
much again, which writes nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.core.events import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, BatchHandler, raw_event
from services.core.metrics import ServiceMetrics, set_consumer_lag

log = structlog.get_logger(__name__)

RETRY_PAUSE_S = 1.0
# How long the reader's `getmany` waits for records: no cost (aiokafka fetches in the background at its
# own pace, `fetch_wait_ms`), only how often an idle reader wakes.
READ_WAIT_MS = 1000
# A revoked partition's batch being written is waited for this long before the group goes on.
REVOKE_WAIT_S = 5.0
# Written batches' offsets are committed together, this long after the first of them was written.
COMMIT_INTERVAL_S = 1.0

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class _FinishWriting(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IntakeConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._owner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        pass


class IntakeConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        group_id: str,
        client_options: dict[str, Any],
        fetch_wait_ms: int,
        max_records: int = 500,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """`fetch_wait_ms` is how long the broker may hold a fetch when nothing comes (what an idle
        consumer's polling costs against how soon a broker that does not answer early hands a fact over);
        `max_records` bounds a batch and what the reader holds ahead of the writer."""
        self._handler = handler
        self._topics = list(topics)
        self._group_id = group_id
        self._max_records = max_records
        self._tracer = tracer or trace.get_tracer(__name__)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            fetch_max_wait_ms=fetch_wait_ms,
            **client_options,
        )
        self._read: list[Record] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # Set while no batch is being written (a revocation waits for it).
        self._idle = asyncio.Event()
        self._idle.set()
        # Where written batches end, per partition, not committed yet; set when there is something to commit.
        self._written: dict[TopicPartition, int] = {}
        self._to_commit = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Join the group and read in the background (a join may wait for the group to rebalance)."""
        self._consumer.subscribe(self._topics, listener=_FinishWriting(self))
        self._tasks = [
            asyncio.create_task(self._reading(), name="webhook-intake-read"),
            asyncio.create_task(self._writing(), name="webhook-intake-write"),
            asyncio.create_task(self._committing(), name="webhook-intake-commit"),
        ]

    async def stop(self) -> None:
        """A batch being written is cancelled before its offsets are committed: it is read again. What was
        written is committed before the group is left."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._commit(set(self._written))
        await self._consumer.stop()

    async def refresh_lag(self, metrics: ServiceMetrics) -> None:
        await set_consumer_lag(metrics, self._group_id, self._consumer)

    async def revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Let the batch being written finish (its offsets are then committed, or read again by the next
        owner: at least once), and forget what was read ahead of revoked partitions: the next owner reads
        it from the committed offset, and so does this process if it gets them back."""
        gone = {(tp.topic, tp.partition) for tp in revoked}
        # Before waiting too: the writer would otherwise take them into its next batch meanwhile.
        self._forget(gone)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REVOKE_WAIT_S):
                await self._idle.wait()
        self._forget(gone)
        # Their next owner starts where this process's writing ended.
        await self._commit({tp for tp in self._written if (tp.topic, tp.partition) in gone})

    def _forget(self, partitions: set[tuple[str, int]]) -> None:
        self._read = [record for record in self._read if (record.topic, record.partition) not in partitions]

    async def _reading(self) -> None:
        await self._consumer.start()
        while True:
            # A writer that falls behind leaves the rest in aiokafka, which then stops fetching.
            await self._room.wait()
            records = await self._consumer.getmany(
                timeout_ms=READ_WAIT_MS, max_records=self._max_records - len(self._read)
            )
            for messages in records.values():
                self._read.extend(messages)
            if records:
                self._arrived.set()
            if len(self._read) >= self._max_records:
                self._room.clear()

    async def _writing(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._read = self._read, []
            self._room.set()
            if not batch:
                continue
            self._idle.clear()
            try:
                await self._write(batch)
            finally:
                self._idle.set()

    async def _write(self, batch: list[Record]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        while batch:
            events = [event for event in map(raw_event, batch) if event is not None]
            try:
                if events:
                    with self._tracer.start_as_current_span(
                        "webhook intake process",
                        kind=SpanKind.CONSUMER,
                        attributes={
                            "messaging.system": "kafka",
                            "messaging.consumer.group.name": self._group_id,
                            "messaging.batch.message_count": len(events),
                        },
                    ):
                        await self._handler(events)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("intake_batch_failed", events=len(events), exc_info=True)
                await asyncio.sleep(RETRY_PAUSE_S)
                # Partitions revoked meanwhile are their next owner's: their facts written here now could
                # land behind later ones of the same room written there.
                kept = self._consumer.assignment()
                batch = [r for r in batch if TopicPartition(r.topic, r.partition) in kept]
                offsets = {tp: offset for tp, offset in offsets.items() if tp in kept}
        if offsets:
            self._written.update(offsets)
            self._to_commit.set()

    async def _committing(self) -> None:
        while True:
            await self._to_commit.wait()
            await asyncio.sleep(COMMIT_INTERVAL_S)
            self._to_commit.clear()
            try:
                await self._commit(set(self._written))
            except Exception:
                # Not committed: a later batch's commit covers its partitions, or they are read again.
                log.warning("intake_commit_failed", exc_info=True)

    async def _commit(self, partitions: set[TopicPartition]) -> None:
        """Commit where the written batches of `partitions` end. A commit refused (partitions revoked
        meanwhile) leaves their facts to be read again: at least once."""
        offsets = {tp: self._written.pop(tp) for tp in partitions if tp in self._written}
        # A batch that outlived REVOKE_WAIT_S may have ended in partitions given away since.
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if offsets:
            with contextlib.suppress(KafkaError):
                await self._consumer.commit(offsets)
