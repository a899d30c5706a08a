"""Wires the webhook dispatcher together."""

from __future__ import annotations

from parley.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

from services.core.service import ServiceRuntime


def build(runtime: ServiceRuntime) -> None:
    # The API is declared in proto/parley/webhooks/v1/; its methods arrive with a later issue and answer
    # UNIMPLEMENTED until then. The process already takes part in health, tracing and start-up.
    runtime.grpc.add_servicer(
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server,
        webhooks_pb2_grpc.WebhookServiceServicer(),  # type: ignore[abstract]  # every method UNIMPLEMENTED, on purpose
        webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
    )
