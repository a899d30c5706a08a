"""A room-status delivery as the webhook intake writes it (its bizRequestId is the fact's id), for the
tests of the dispatcher's queues (tests/unit/webhooks) and of the schedule (tests/integration/webhooks);
and the webhook store and dispatcher those tests and the webhook benches build in process, with no
broker and no attempts."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings, WebhooksSettings
from services.core.events import EventPublisher, create_broker
from services.core.metrics import ServiceMetrics
from services.core.outbox import Outbox
from services.core.ssrf import TargetGuard
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.master_key import load_sealing_key
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import RetryPolicy
from services.webhooks.sender import WebhookSender
from services.webhooks.store import NewDelivery, WebhookStore, outbox
from tests.testing import MASTER_KEY

SETTINGS = Settings(webhooks=WebhooksSettings(master_key=MASTER_KEY))
StoreT = TypeVar("StoreT", bound=WebhookStore)


def offline_store(
    engine: AsyncEngine, settings: Settings = SETTINGS, store_class: type[StoreT] = WebhookStore
) -> StoreT:
    """The store over `engine` whose outbox is only written to (no relay runs): its broker is never
    connected, so what a transaction staged stays in the table."""
    broker = create_broker("127.0.0.1:1", client_id="offline-store", tracer_provider=TracerProvider())
    return store_class(
        engine, Outbox(outbox, engine, EventPublisher(broker, source="//tests")), load_sealing_key(settings)
    )


def idle_dispatcher(store: WebhookStore) -> tuple[Dispatcher, WebhookSender]:
    """A dispatcher that makes no attempt (no slot): what an intake hands it stays in the schedule. The
    sender is the caller's to close."""
    sender = WebhookSender(TargetGuard([]), timeout_s=1.0, max_connections=1)
    dispatcher = Dispatcher(
        store,
        sender,
        RetryPolicy([0]),
        WebhookMetrics(ServiceMetrics("webhooks")),
        concurrency=0,
        lease_s=30,
    )
    return dispatcher, sender


def joined_delivery(
    event_id: str, room: str, event_time: datetime, *, endpoint_id: str, biz_name: str, kind: str = ""
) -> NewDelivery:
    return NewDelivery(
        endpoint_id=endpoint_id,
        biz_name=biz_name,
        ordering_key=room,
        event_id=event_id,
        event_type="parley.rooms.v1.ParticipantJoined",
        biz_request_id=event_id,
        body="{}",
        event_time=event_time,
        kind=kind,
    )
