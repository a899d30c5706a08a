"""The room manager's facts, staged with the state change that caused them and published from there.

The service stages an operation's facts in its room store's outbox in the same commit as the state
(`RoomStore.commit`): a fact is as durable as the change it reports, and keeps the `ce_id` it was given there
through every retry and every room manager that publishes it. `FactRelay` publishes what is staged in batches,
each fact in the trace of the request that caused it, and removes a batch once the broker acknowledged all of
it. The producer takes a batch's facts in order and keeps one request in flight per partition, so the facts of
a room (keyed by room, calls by call) keep their order; a batch goes out in a few produce requests rather than
a round trip per fact (writing those was ~12 % of the room manager's CPU samples in bench/join_cpu.py). A
broker that refuses is retried with a growing pause, without end, the whole batch again: a fact is never
dropped, the ones after it wait, and those of the batch that had gone out come again with the same `ce_id`,
which consumers drop as a repeat, as after a crash between a batch's publishing and its removal from the
store.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from opentelemetry import propagate

from services.core.events import EventPublisher, StagedEvent
from services.core.waiting import woken_or_timed_out
from services.rooms.changes import Change, change_key, change_topic

log = structlog.get_logger(__name__)

BATCH = 100
_FIRST_PAUSE_S = 0.2
_LONGEST_PAUSE_S = 5.0
# How often the outbox is looked at without being told something was staged (another replica's facts).
POLL_INTERVAL_S = 1.0
# How long the relay waits, once told something was staged, for more before it publishes.
GATHER_S = 0.02


@dataclass(frozen=True)
class StagedFact:
    event: StagedEvent
    # The W3C trace context of the request that caused it ("" outside a trace).
    traceparent: str


def stage(changes: list[Change]) -> list[StagedFact]:
    """The facts of these changes, each given its identity now, in the current trace."""
    if not changes:
        # Most operations (heartbeats, sweeps, deliveries' answers) cause none: no trace context to read.
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    now = datetime.now(UTC)
    return [
        StagedFact(
            StagedEvent(
                event_id=str(uuid.uuid4()),
                topic=change_topic(change),
                key=change_key(change),
                event_type=change.DESCRIPTOR.full_name,
                payload=change.SerializeToString(),
                time=now,
            ),
            carrier.get("traceparent", ""),
        )
        for change in changes
    ]


def _carrier(fact: StagedFact) -> dict[str, str]:
    return {"traceparent": fact.traceparent} if fact.traceparent else {}


class FactOutbox(Protocol):
    """A room store's outbox (services/rooms/store.py)."""

    async def staged_facts(self, limit: int) -> list[StagedFact]:
        """The oldest staged facts, in order; none while another room manager publishes them."""
        ...

    async def facts_published(self, count: int) -> None:
        """The first `count` of what `staged_facts` returned were published."""
        ...


class FactRelay:
    def __init__(self, outbox: FactOutbox, events: EventPublisher) -> None:
        self._outbox = outbox
        self._events = events
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Something was staged: publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._relay(), name="room-facts")

    async def stop(self, timeout_s: float) -> None:
        """Publish what is staged (for at most `timeout_s`), then stop; the rest waits in the outbox."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            await asyncio.wait_for(self.publish_staged(), timeout_s)
        except Exception:
            log.warning("room_facts_left_staged", exc_info=True)

    async def publish_staged(self) -> int:
        """Publish every staged fact in order; return how many were published."""
        published = 0
        while batch := await self._outbox.staged_facts(BATCH):
            await self._events.publish_many([(fact.event, _carrier(fact)) for fact in batch])
            await self._outbox.facts_published(len(batch))
            published += len(batch)
        return published

    async def _relay(self) -> None:
        pause_s = _FIRST_PAUSE_S
        while True:
            await woken_or_timed_out(self._wake, POLL_INTERVAL_S)
            # The facts of requests running alongside, staged within the pause, go out with this one in
            # one produce request: woken at once, the relay published one or two facts at a time.
            await asyncio.sleep(GATHER_S)
            self._wake.clear()
            try:
                await self.publish_staged()
                pause_s = _FIRST_PAUSE_S
            except Exception as error:
                log.warning("room_facts_publish_failed", error=repr(error), retry_in_s=pause_s)
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, _LONGEST_PAUSE_S)
                self._wake.set()
