"""The dispatcher's metrics, in its service's registry (services/core/metrics.py, served on /metrics):
attempts by outcome and their duration through the shared `webhook_delivered` hook, and the latency from
an event to its successful delivery, by endpoint kind."""

from __future__ import annotations

from prometheus_client import Histogram

from services.core.metrics import ServiceMetrics
from services.webhooks.policy import Outcome
from services.webhooks.sender import AttemptResult
from services.webhooks.store import Claim

# From seconds (a receiver that answers at once) to the hours a retry schedule spans.
EVENT_TO_DELIVERY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 7200, 36000)


class WebhookMetrics:
    def __init__(self, service: ServiceMetrics) -> None:
        self._service = service
        self.event_to_delivery = Histogram(
            "parley_webhook_event_to_delivery_seconds",
            "From the event's ce_time to the receiver's successful answer, by endpoint kind",
            ["kind"],
            buckets=EVENT_TO_DELIVERY_BUCKETS_S,
            registry=service.registry,
        )

    def attempted(self, claim: Claim, outcome: Outcome, result: AttemptResult, now_epoch_s: float) -> None:
        """`outcome` counts on parley_webhook_deliveries_total: delivered, retrying (a retry is scheduled),
        dead_lettered, endpoint_disabled."""
        self._service.webhook_delivered(outcome.value, result.latency_s)
        if outcome is Outcome.DELIVERED:
            latency = max(0.0, now_epoch_s - claim.event_time.timestamp())
            self.event_to_delivery.labels(claim.kind).observe(latency)
