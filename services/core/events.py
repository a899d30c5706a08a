"""Facts on Kafka: a broker factory, a publisher that stamps CloudEvents headers, and a consumer that
decodes protobuf events and acknowledges them only once they have been handled.

Every event is a protobuf message from `proto/`, sent in CloudEvents' Kafka binary mode: the payload is
the serialised message, the attributes are headers (`ce_id`, `ce_type` = the message's full protobuf
name, `ce_source`, `ce_time`, `ce_specversion`), and FastStream's telemetry middleware adds the W3C
`traceparent`, so a consumer's span joins the producer's trace.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.security import BaseSecurity
from google.protobuf.message import DecodeError, Message
from opentelemetry.trace import TracerProvider

from services.core.topics import Topic

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/protobuf"
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1500
SPEC_VERSION = "1.0"

EventT = TypeVar("EventT", bound=Message)


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents attributes a consumer gets beside the payload; `id` is what it deduplicates on."""

    id: str
    type: str
    source: str
    time: str
    topic: str
    key: str | None


@dataclass(frozen=True)
class StagedEvent:
    """An event serialised and given its identity, not necessarily published yet."""

    event_id: str
    topic: Topic
    key: str
    event_type: str
    payload: bytes
    time: datetime


def create_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    tracer_provider: TracerProvider,
    security: BaseSecurity | None = None,
) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        security=security,
        middlewares=(KafkaTelemetryMiddleware(tracer_provider=tracer_provider),),
        # The broker's own per-message log lines would duplicate ours.
        log_level=0,
    )


class EventPublisher:
    def __init__(self, broker: KafkaBroker, *, source: str) -> None:
        self._broker = broker
        self._source = source

    async def publish(self, topic: Topic, event: Message, *, key: str) -> str:
        """Publish `event` keyed by `key` (the entity whose order matters); return its `ce_id`."""
        event_id = str(uuid.uuid4())
        await self.publish_serialized(
            StagedEvent(
                event_id=event_id,
                topic=topic,
                key=key,
                event_type=event.DESCRIPTOR.full_name,
                payload=event.SerializeToString(),
                time=datetime.now(UTC),
            )
        )
        return event_id

    async def publish_serialized(self, event: StagedEvent) -> None:
        """Publish an event serialised earlier, keeping its id and time (the outbox's replays)."""
        headers = {
            "ce_id": event.event_id,
            "ce_type": event.event_type,
            "ce_source": self._source,
            "ce_time": event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "ce_specversion": SPEC_VERSION,
            "content-type": CONTENT_TYPE,
        }
        await self._broker.publish(
            event.payload,
            event.topic.value,
            key=event.key.encode(),
            headers=headers,
            correlation_id=event.event_id,
        )


Handler = Callable[[Any, Envelope], Awaitable[None]]


class RecentEventIds:
    """The ids of the last `limit` events handled, for consumers whose effect is not stored (a push) and so
    cannot be made idempotent in a database: a redelivered event seen lately is skipped."""

    def __init__(self, limit: int = 4096) -> None:
        self._order: deque[str] = deque(maxlen=limit)
        self._ids: set[str] = set()

    def first_delivery(self, event_id: str) -> bool:
        """True the first time `event_id` comes (within the last `limit`), False for a repeat."""
        if event_id in self._ids:
            return False
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(event_id)
        self._ids.add(event_id)
        return True


class EventConsumer:
    """Routes the events of one topic to handlers by `ce_type`, for one consumer group.

    Acknowledgement is explicit: the offset is committed after the handler returns. A handler that
    raises gets the event again (at-least-once; handlers are idempotent on `Envelope.id`). An event
    that can never be handled — no `ce_type`, an undecodable payload — is logged once and skipped, so it
    cannot stall its partition. Types nobody here handles are skipped quietly: topics are shared.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topic: Topic,
        *,
        group_id: str,
        start_at: Literal["earliest", "latest"] = "earliest",
        max_wait_ms: int = 500,
    ) -> None:
        """`start_at` is where a new group begins: "earliest" builds state from everything the topic
        retains; "latest" suits live fan-out (a gateway pushing to its sessions) with a group per process.
        `max_wait_ms` bounds how long a fetch waits for data: the broker may not answer a fetch early when
        a record arrives, so it is also the latency a live consumer adds."""
        self._handlers: dict[str, tuple[type[Message], Handler]] = {}
        self._topic = topic
        broker.subscriber(
            topic.value,
            group_id=group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset=start_at,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            fetch_max_wait_ms=max_wait_ms,
        )(self._on_message)

    def on(self, event_type: type[EventT]) -> Callable[[Callable[[EventT, Envelope], Awaitable[None]]], Any]:
        def register(handler: Callable[[EventT, Envelope], Awaitable[None]]) -> Any:
            self._handlers[event_type.DESCRIPTOR.full_name] = (event_type, handler)
            return handler

        return register

    async def _on_message(self, message: KafkaMessage) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in message.headers.items()}
        ce_type = headers.get("ce_type")
        raw_key = getattr(message.raw_message, "key", None)
        key = raw_key.decode(errors="replace") if isinstance(raw_key, bytes) else None
        if not ce_type or "ce_id" not in headers:
            log.warning("event_skipped", reason="no CloudEvents headers", topic=self._topic.value, key=key)
            return
        route = self._handlers.get(ce_type)
        if route is None:
            return
        event_type, handler = route
        event = event_type()
        try:
            event.ParseFromString(message.body)
        except DecodeError:
            log.warning(
                "event_skipped", reason="undecodable payload", ce_id=headers["ce_id"], ce_type=ce_type
            )
            return
        envelope = Envelope(
            id=headers["ce_id"],
            type=ce_type,
            source=headers.get("ce_source", ""),
            time=headers.get("ce_time", ""),
            topic=self._topic.value,
            key=key,
        )
        await handler(event, envelope)
