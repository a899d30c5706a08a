"""Publishes the room manager's changes on their topics, keyed by room (calls by call), in the order
they happened.

Rooms are live state (docs/decisions.md), so there is no outbox: a change is true once the room manager
has made it, and its fact follows. One worker publishes them one at a time, so the facts of a room keep
their order across concurrent requests; each is published in the trace of the request that caused it.
A broker that refuses is retried with a growing pause; a fact still refused after that is logged and
dropped rather than holding back every later one.
"""

from __future__ import annotations

import asyncio

import structlog
from opentelemetry import context as otel_context

from services.core.events import EventPublisher
from services.core.serial_worker import SerialWorker
from services.rooms.changes import Change, change_key, change_topic

log = structlog.get_logger(__name__)

_ATTEMPTS = 5
_FIRST_PAUSE_S = 0.2


class FactPublisher:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events
        self._worker: SerialWorker[tuple[Change, otel_context.Context]] = SerialWorker(
            self._publish_in_context, name="room-facts"
        )

    def publish(self, changes: list[Change]) -> None:
        context = otel_context.get_current()
        for change in changes:
            self._worker.put((change, context))

    async def start(self) -> None:
        self._worker.start()

    async def stop(self, timeout_s: float) -> None:
        """Publish what is queued (for at most `timeout_s`), then stop."""
        await self._worker.stop(timeout_s)

    async def _publish_in_context(self, item: tuple[Change, otel_context.Context]) -> None:
        change, context = item
        token = otel_context.attach(context)
        try:
            await self._publish(change)
        finally:
            otel_context.detach(token)

    async def _publish(self, change: Change) -> None:
        topic, key = change_topic(change), change_key(change)
        pause_s = _FIRST_PAUSE_S
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                await self._events.publish(topic, change, key=key)
                return
            except Exception as error:
                log.warning(
                    "room_fact_publish_failed",
                    event=change.DESCRIPTOR.full_name,
                    key=key,
                    attempt=attempt,
                    error=repr(error),
                )
                if attempt < _ATTEMPTS:
                    await asyncio.sleep(pause_s)
                    pause_s *= 2
        log.error("room_fact_dropped", event=change.DESCRIPTOR.full_name, key=key)
