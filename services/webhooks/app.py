"""Wires the webhook dispatcher together: facts from every topic of the catalogue into the delivery
schedule in its database, the loop that delivers them, the outbox of its outcome facts, and the operator
API (docs/webhooks.md)."""

from __future__ import annotations

from dataclasses import dataclass

from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

from services.core.config import ServiceName
from services.core.db import create_engine
from services.core.kafka_security import client_options
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.core.service import ServiceRuntime
from services.core.ssrf import TargetGuard
from services.core.topics import Topic
from services.webhooks.apps import AppDirectory
from services.webhooks.consumer import IntakeConsumer
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.grpc_api import WebhookServicer
from services.webhooks.intake import Intake
from services.webhooks.master_key import load_sealing_key
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import RetryPolicy
from services.webhooks.pruning import Pruner
from services.webhooks.sender import WebhookSender
from services.webhooks.store import WebhookStore, outbox

GROUP = "parley-webhooks"
# Callbacks wait on the consumer: a fetch returns within this long even when the broker holds it.
MAX_WAIT_MS = 20


@dataclass(frozen=True)
class WebhookService:
    """What tests and the bench reach into."""

    store: WebhookStore
    dispatcher: Dispatcher
    metrics: WebhookMetrics


def build(runtime: ServiceRuntime) -> WebhookService:
    settings = runtime.settings.webhooks
    engine = create_engine(runtime.settings.database_url_for(ServiceName.WEBHOOKS))
    facts = Outbox(outbox, engine, runtime.events)
    store = WebhookStore(engine, facts, load_sealing_key(runtime.settings))
    policy = RetryPolicy(settings.retry_delays_s())
    metrics = WebhookMetrics(runtime.metrics)
    sender = WebhookSender(
        TargetGuard(settings.allowed_networks()),
        timeout_s=settings.attempt_timeout_s,
        max_connections=settings.concurrency,
    )
    dispatcher = Dispatcher(
        store, sender, policy, metrics, concurrency=settings.concurrency, lease_s=settings.lease_s
    )
    apps = AppDirectory(
        LicenceServiceStub(runtime.channel(ServiceName.LICENCE)), ttl_s=settings.app_cache_ttl_s
    )
    intake = Intake(store, apps, policy, dispatcher)

    # Every topic but the dispatcher's own (an endpoint fed its outcomes would feed itself), through one
    # consumer: one group to join at start, one to leave at stop.
    # Batches: one transaction and one offset commit for what was read while the one before was written.
    consumer = IntakeConsumer(
        runtime.settings.kafka.bootstrap_servers,
        [topic.value for topic in Topic if topic is not Topic.WEBHOOK],
        intake.on_events,
        group_id=GROUP,
        client_options=client_options(runtime.settings.kafka),
        fetch_wait_ms=MAX_WAIT_MS,
        tracer=runtime.tracer_provider.get_tracer("services.webhooks.consumer"),
    )
    runtime.metrics.on_scrape(lambda: consumer.refresh_lag(runtime.metrics))

    def endpoints_changed() -> None:
        intake.endpoints_changed()
        dispatcher.endpoints_changed()

    runtime.grpc.add_servicer(
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server,
        WebhookServicer(
            store,
            apps,
            queued=dispatcher.wake,
            endpoints_changed=endpoints_changed,
            secret_rotated=dispatcher.forget_secrets,
        ),
        webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
    )

    async def prepare() -> None:
        await upgrade_to_head(engine, "services.webhooks", runtime.settings)

    runtime.on_start(prepare)
    runtime.on_ready(facts.start)
    runtime.on_ready(dispatcher.start)
    pruner = Pruner(store, settings.retention_s)
    runtime.on_ready(pruner.start)
    # Stop hooks run in reverse: the dispatcher stops attempting, then the outcome facts are published.
    runtime.on_stop(engine.dispose)
    runtime.on_stop(facts.stop)
    runtime.on_stop(sender.close)
    runtime.on_stop(dispatcher.stop)
    runtime.on_stop(pruner.stop)
    # Facts are read only once the schedule's tables exist; reading stops first.
    runtime.on_ready(consumer.start)
    runtime.on_stop(consumer.stop)
    return WebhookService(store, dispatcher, metrics)
