"""Facts on Kafka: a broker factory, a publisher that stamps CloudEvents headers, and a consumer that
decodes protobuf events and acknowledges them only once they have been handled.

Every event is a protobuf message from `proto/`, sent in CloudEvents' Kafka binary mode: the payload is
the serialised message, the attributes are headers (`ce_id`, `ce_type` = the message's full protobuf
name, `ce_source`, `ce_time`, `ce_specversion`), and the W3C `traceparent` (FastStream's telemetry middleware
writes it for one event, `EventPublisher.publish_many` itself for many), so a consumer's span joins the
producer's trace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.security import BaseSecurity
from google.protobuf.message import DecodeError, Message
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, TracerProvider

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
    def __init__(
        self, broker: KafkaBroker, *, source: str, tracer_provider: TracerProvider | None = None
    ) -> None:
        self._broker = broker
        self._source = source
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

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
        await self._broker.publish(
            event.payload,
            event.topic.value,
            key=event.key.encode(),
            headers=self._cloudevents_headers(event),
            correlation_id=event.event_id,
        )

    def _cloudevents_headers(self, event: StagedEvent) -> dict[str, str]:
        return {
            "ce_id": event.event_id,
            "ce_type": event.event_type,
            "ce_source": self._source,
            "ce_time": _ce_time(event.time),
            "ce_specversion": SPEC_VERSION,
            "content-type": CONTENT_TYPE,
        }

    async def publish_many(self, events: Sequence[tuple[StagedEvent, Mapping[str, str]]]) -> None:
        """Publish events serialised earlier, in their order, each under the trace context its carrier
        holds, waiting for the broker's acknowledgements together rather than one after another.

        Straight to aiokafka's producer, not through FastStream's per-message layers (two spans, a metric
        and a publish command each: three times the CPU of the send, measured in bench/README.md "Webhook
        deliveries"). The records carry the headers FastStream writes, in its order. Each event is sent
        under a PRODUCER span of its own, a child of the trace context its carrier holds (the span that
        staged it), so a fact's trace runs from the request that caused it through its publishing to its
        consumers; a span nobody exports is not recorded (services/core/telemetry.py), so this costs
        little where tracing is off."""
        if not events:
            return
        producer = _aiokafka_producer(self._broker)
        confirmations = []
        for event, carrier in events:
            parent = propagate.extract(carrier) if "traceparent" in carrier else None
            with self._tracer.start_as_current_span(
                f"{event.topic.value} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.operation": "publish"},
            ):
                sent_under: dict[str, str] = {}
                propagate.inject(sent_under)
                # Handed to the producer in order; it keeps one request in flight per partition.
                confirmations.append(
                    await producer.send(
                        event.topic.value,
                        value=event.payload,
                        key=event.key.encode(),
                        headers=self._record_headers(event, sent_under),
                    )
                )
        # Every confirmation is awaited, so none fails unobserved; the first failure is raised.
        for outcome in await asyncio.gather(*confirmations, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    def _record_headers(self, event: StagedEvent, carrier: Mapping[str, str]) -> list[tuple[str, bytes]]:
        """The headers `publish_serialized` writes through FastStream, in the same order: its content type
        and correlation id first, then the CloudEvents attributes, then the trace context."""
        return [
            ("content-type", CONTENT_TYPE.encode()),
            ("correlation_id", event.event_id.encode()),
            ("ce_id", event.event_id.encode()),
            ("ce_type", event.event_type.encode()),
            ("ce_source", self._source.encode()),
            ("ce_time", _ce_time(event.time).encode()),
            ("ce_specversion", SPEC_VERSION.encode()),
            *((name, carrier[name].encode()) for name in _TRACE_HEADERS if name in carrier),
        ]


# What FastStream's telemetry writes (W3C trace context, without baggage, which Parley does not set).
_TRACE_HEADERS = ("traceparent", "tracestate")


def _ce_time(time: datetime) -> str:
    return time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The aiokafka producer the broker started (and stops): FastStream has no public way to it."""
    producer: AIOKafkaProducer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
    return producer


@dataclass(frozen=True)
class RawEvent:
    """An event as it came: its serialised payload, undecoded, and its CloudEvents attributes."""

    payload: bytes
    envelope: Envelope


Handler = Callable[[Any, Envelope], Awaitable[None]]
# Gets every event of a batch undecoded, for consumers that forward events they need not decode.
BatchHandler = Callable[[list[RawEvent]], Awaitable[None]]


def _envelope(headers: Mapping[str, str], raw_key: object, topic: str) -> Envelope | None:
    """The event's CloudEvents attributes; None (logged) when it has none."""
    key = raw_key.decode(errors="replace") if isinstance(raw_key, bytes) else None
    ce_type = headers.get("ce_type")
    if not ce_type or "ce_id" not in headers:
        log.warning("event_skipped", reason="no CloudEvents headers", topic=topic, key=key)
        return None
    return Envelope(
        id=headers["ce_id"],
        type=ce_type,
        source=headers.get("ce_source", ""),
        time=headers.get("ce_time", ""),
        topic=topic,
        key=key,
    )


def raw_event(record: ConsumerRecord[bytes, bytes]) -> RawEvent | None:
    """A record read with aiokafka's own consumer as the batch consumers hand it; None (logged) when it
    has no CloudEvents headers."""
    headers = {key: value.decode(errors="replace") for key, value in record.headers}
    envelope = _envelope(headers, record.key, record.topic)
    return None if envelope is None else RawEvent(record.value or b"", envelope)


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


def _group_options(
    group_id: str, start_at: Literal["earliest", "latest"], max_wait_ms: int
) -> dict[str, Any]:
    """How every consumer of the platform joins its group and acknowledges: one place, so the per-event and
    the batch consumers cannot drift apart."""
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": start_at,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "fetch_max_wait_ms": max_wait_ms,
    }


async def _undecoded(message: KafkaMessage) -> KafkaMessage:
    """A subscriber's decoder handing its handler the message itself. A handler that takes it by the
    `KafkaMessage` annotation instead has FastStream resolve that annotation in a worker thread, a thread
    hop for every message consumed."""
    return message


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
        topic: Topic | Iterable[Topic],
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
        # Several topics share one Kafka consumer and one group join (the webhook dispatcher reads them all).
        topics = (topic,) if isinstance(topic, Topic) else tuple(topic)
        self._topics = ",".join(t.value for t in topics)
        broker.subscriber(
            *(t.value for t in topics),
            decoder=_undecoded,
            **_group_options(group_id, start_at, max_wait_ms),
        )(self._on_message)

    def on(self, event_type: type[EventT]) -> Callable[[Callable[[EventT, Envelope], Awaitable[None]]], Any]:
        def register(handler: Callable[[EventT, Envelope], Awaitable[None]]) -> Any:
            self._handlers[event_type.DESCRIPTOR.full_name] = (event_type, handler)
            return handler

        return register

    async def _on_message(self, message: Any) -> None:
        """`message` is the KafkaMessage itself (`_undecoded`)."""
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in message.headers.items()}
        topic = str(getattr(message.raw_message, "topic", self._topics))
        envelope = _envelope(headers, getattr(message.raw_message, "key", None), topic)
        if envelope is None:
            return
        route = self._handlers.get(envelope.type)
        if route is None:
            return
        event_type, handler = route
        event = event_type()
        try:
            event.ParseFromString(message.body)
        except DecodeError:
            log.warning(
                "event_skipped", reason="undecodable payload", ce_id=envelope.id, ce_type=envelope.type
            )
            return
        await handler(event, envelope)


class EventBatchConsumer:
    """Hands the events of its topics to one handler in batches, undecoded, for one consumer group: what
    one fetch returned, up to `max_records`. For a consumer that must keep up with every fact of the
    platform (the webhook dispatcher): it writes a batch in one transaction and commits its offsets once,
    where `EventConsumer` commits after every event.

    Acknowledgement is explicit as in `EventConsumer`: the offsets are committed after the handler returns;
    a handler that raises gets the whole batch again (handlers are idempotent on `Envelope.id`). Events
    without CloudEvents headers are logged and left out.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topics: Iterable[Topic],
        handler: BatchHandler,
        *,
        group_id: str,
        start_at: Literal["earliest", "latest"] = "earliest",
        max_wait_ms: int = 500,
        max_records: int = 500,
    ) -> None:
        """`max_wait_ms` as in `EventConsumer`; a batch is what has arrived when it is up, or earlier."""
        self._handler = handler
        names = [t.value for t in topics]
        broker.subscriber(
            *names,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=max_wait_ms,
            decoder=_records_with_headers,
            **_group_options(group_id, start_at, max_wait_ms),
        )(self._on_batch)

    async def _on_batch(self, records: Any) -> None:
        """`records` as `_records_with_headers` decodes them. Taking the batch as its body rather than the
        `KafkaMessage` (FastStream's context) spares a thread: FastStream resolves a context argument with
        a synchronous function that fast_depends runs in a worker thread, once per batch."""
        events = []
        for record, headers in records:
            envelope = _envelope(headers, record.key, record.topic)
            if envelope is not None:
                events.append(RawEvent(record.value or b"", envelope))
        if events:
            await self._handler(events)


async def _records_with_headers(message: KafkaMessage) -> Any:
    """The batch's records, each with the headers FastStream's parser decoded, in their order. FastStream's
    own decoder would build a message object per record, which nothing here reads."""
    records: Sequence[ConsumerRecord[bytes, bytes]] = message.raw_message  # type: ignore[assignment]
    return list(zip(records, message.batch_headers, strict=True))
