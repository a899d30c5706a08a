"""Prometheus metrics of the dispatcher: deliveries by outcome, and latency from the event to the
receiver's answer (PARLEY_WEBHOOKS__METRICS_PORT serves them on /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from services.webhooks.policy import Outcome
from services.webhooks.sender import AttemptResult
from services.webhooks.store import Claim

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 7200, 36000)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Each dispatcher its own registry, so several may run in one process (tests)."""
        self.registry = registry or CollectorRegistry()
        self._server: Any = None
        self.attempts = Counter(
            "parley_webhook_attempts",
            "Delivery attempts, by endpoint kind and outcome (delivered, retrying, dead_lettered, "
            "endpoint_disabled).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.event_to_delivery = Histogram(
            "parley_webhook_event_to_delivery_seconds",
            "From the event's ce_time to the receiver's successful answer.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.attempt_latency = Histogram(
            "parley_webhook_attempt_seconds",
            "One HTTP attempt, connect to answer.",
            buckets=LATENCY_BUCKETS[:10],
            registry=self.registry,
        )

    def attempted(self, claim: Claim, outcome: Outcome, result: AttemptResult, now_epoch_s: float) -> None:
        self.attempts.labels(claim.kind, outcome.value).inc()
        self.attempt_latency.observe(result.latency_s)
        if outcome is Outcome.DELIVERED:
            self.event_to_delivery.labels(claim.kind).observe(
                max(0.0, now_epoch_s - claim.event_time.timestamp())
            )

    def serve(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    async def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
