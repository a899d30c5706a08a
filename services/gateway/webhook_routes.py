"""Operator routes of the webhook dispatcher (docs/webhooks.md, "Operator API"): an app's signing secret,
its endpoints, its deliveries and their attempts, redelivery and test events."""

from __future__ import annotations

from fastapi import APIRouter, Query
from google.protobuf.timestamp_pb2 import Timestamp
from parley.webhooks.v1 import webhooks_pb2
from parley.webhooks.v1.webhooks_pb2_grpc import WebhookServiceStub
from pydantic import Field

from services.gateway.http_api import ApiModel

RPC_TIMEOUT_S = 10


def _time(stamp: Timestamp, present: bool) -> str | None:
    return stamp.ToJsonString() if present else None


class SecretOut(ApiModel):
    secret: str
    previous_valid_until: str | None = None

    @classmethod
    def of(cls, message: webhooks_pb2.Secret) -> SecretOut:
        return cls(
            secret=message.secret,
            previous_valid_until=_time(
                message.previous_valid_until, message.HasField("previous_valid_until")
            ),
        )


class EndpointOut(ApiModel):
    endpoint_id: str
    biz_name: str
    kind: str
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str
    created_at: str

    @classmethod
    def of(cls, message: webhooks_pb2.Endpoint) -> EndpointOut:
        return cls(
            endpoint_id=message.endpoint_id,
            biz_name=message.biz_name,
            kind=message.kind,
            url=message.url,
            event_types=list(message.event_types),
            enabled=message.enabled,
            disabled_reason=message.disabled_reason,
            created_at=message.created_at.ToJsonString(),
        )


class CreateEndpointBody(ApiModel):
    url: str = Field(min_length=1, max_length=2048)
    event_types: list[str] = Field(min_length=1, max_length=100)


class UpdateEndpointBody(ApiModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=100)
    enabled: bool | None = None


class DeliveryOut(ApiModel):
    delivery_id: str
    event_id: str
    event_type: str
    biz_request_id: str
    endpoint_id: str
    url: str
    ordering_key: str
    status: str
    attempts: int
    http_status: int
    last_error: str
    last_latency_ms: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None

    @classmethod
    def of(cls, message: webhooks_pb2.Delivery) -> DeliveryOut:
        return cls(
            delivery_id=message.delivery_id,
            event_id=message.event_id,
            event_type=message.event_type,
            biz_request_id=message.biz_request_id,
            endpoint_id=message.endpoint_id,
            url=message.url,
            ordering_key=message.ordering_key,
            status=message.status,
            attempts=message.attempt,
            http_status=message.http_status,
            last_error=message.last_error,
            last_latency_ms=message.last_latency_ms,
            next_attempt_at=_time(message.next_attempt_at, message.HasField("next_attempt_at")),
            created_at=message.created_at.ToJsonString(),
            delivered_at=_time(message.delivered_at, message.HasField("delivered_at")),
        )


class AttemptOut(ApiModel):
    attempt: int
    started_at: str
    latency_ms: int
    http_status: int
    outcome: str
    error: str


class DeliveryDetailOut(DeliveryOut):
    body: str
    attempt_log: list[AttemptOut]


class RedeliveredOut(ApiModel):
    count: int


class TestEventBody(ApiModel):
    endpoint_id: str = Field(min_length=1)


def webhook_router(webhooks: WebhookServiceStub) -> APIRouter:
    router = APIRouter(prefix="/v1/apps/{biz_name}", tags=["webhooks"])

    @router.get("/webhook-secret", summary="The app's webhook signing secret (whsec_...)")
    async def get_secret(biz_name: str) -> SecretOut:
        secret = await webhooks.GetSecret(
            webhooks_pb2.GetSecretRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return SecretOut.of(secret)

    @router.post("/webhook-secret/rotate", summary="A new secret; the old one signs beside it for 24 h")
    async def rotate_secret(biz_name: str) -> SecretOut:
        secret = await webhooks.RotateSecret(
            webhooks_pb2.GetSecretRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return SecretOut.of(secret)

    @router.get("/webhook-endpoints", summary="The app's endpoints: its two seed URLs and CloudEvents ones")
    async def list_endpoints(biz_name: str) -> list[EndpointOut]:
        answer = await webhooks.ListEndpoints(
            webhooks_pb2.ListEndpointsRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return [EndpointOut.of(endpoint) for endpoint in answer.endpoints]

    @router.post("/webhook-endpoints", status_code=201, summary="Add a CloudEvents endpoint")
    async def create_endpoint(biz_name: str, body: CreateEndpointBody) -> EndpointOut:
        endpoint = await webhooks.CreateEndpoint(
            webhooks_pb2.CreateEndpointRequest(biz_name=biz_name, url=body.url, event_types=body.event_types),
            timeout=RPC_TIMEOUT_S,
        )
        return EndpointOut.of(endpoint)

    @router.patch("/webhook-endpoints/{endpoint_id}", summary="Re-enable, or change a CloudEvents endpoint")
    async def update_endpoint(biz_name: str, endpoint_id: str, body: UpdateEndpointBody) -> EndpointOut:
        request = webhooks_pb2.UpdateEndpointRequest(
            biz_name=biz_name, endpoint_id=endpoint_id, url=body.url or "", event_types=body.event_types or []
        )
        if body.enabled is not None:
            request.enabled = body.enabled
        return EndpointOut.of(await webhooks.UpdateEndpoint(request, timeout=RPC_TIMEOUT_S))

    @router.delete(
        "/webhook-endpoints/{endpoint_id}", status_code=204, summary="Remove a CloudEvents endpoint"
    )
    async def delete_endpoint(biz_name: str, endpoint_id: str) -> None:
        await webhooks.DeleteEndpoint(
            webhooks_pb2.EndpointRequest(biz_name=biz_name, endpoint_id=endpoint_id), timeout=RPC_TIMEOUT_S
        )

    @router.get("/deliveries", summary="The app's deliveries, newest first")
    async def list_deliveries(
        biz_name: str,
        status: str = Query("", pattern="^(|pending|delivered|dead)$"),
        endpoint_id: str = Query("", alias="endpointId"),
        limit: int = Query(50, ge=1, le=1000),
    ) -> list[DeliveryOut]:
        answer = await webhooks.ListDeliveries(
            webhooks_pb2.ListDeliveriesRequest(
                biz_name=biz_name, status=status, endpoint_id=endpoint_id, limit=limit
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return [DeliveryOut.of(delivery) for delivery in answer.deliveries]

    @router.get("/deliveries/{delivery_id}", summary="One delivery, its body and every attempt")
    async def get_delivery(biz_name: str, delivery_id: str) -> DeliveryDetailOut:
        detail = await webhooks.GetDelivery(
            webhooks_pb2.GetDeliveryRequest(biz_name=biz_name, delivery_id=delivery_id), timeout=RPC_TIMEOUT_S
        )
        return DeliveryDetailOut(
            **DeliveryOut.of(detail.delivery).model_dump(),
            body=detail.body,
            attempt_log=[
                AttemptOut(
                    attempt=a.attempt,
                    started_at=a.started_at.ToJsonString(),
                    latency_ms=a.latency_ms,
                    http_status=a.http_status,
                    outcome=a.outcome,
                    error=a.error,
                )
                for a in detail.attempts
            ],
        )

    @router.post("/deliveries/{delivery_id}/redeliver", summary="Try a failed delivery again")
    async def redeliver(biz_name: str, delivery_id: str) -> DeliveryOut:
        delivery = await webhooks.Redeliver(
            webhooks_pb2.GetDeliveryRequest(biz_name=biz_name, delivery_id=delivery_id), timeout=RPC_TIMEOUT_S
        )
        return DeliveryOut.of(delivery)

    @router.post("/deliveries/redeliver-failed", summary="Try every dead-lettered delivery again")
    async def redeliver_failed(
        biz_name: str, endpoint_id: str = Query("", alias="endpointId")
    ) -> RedeliveredOut:
        answer = await webhooks.RedeliverFailed(
            webhooks_pb2.RedeliverFailedRequest(biz_name=biz_name, endpoint_id=endpoint_id),
            timeout=RPC_TIMEOUT_S,
        )
        return RedeliveredOut(count=answer.count)

    @router.post("/webhook-test", status_code=202, summary="Queue a signed test event to an endpoint")
    async def send_test_event(biz_name: str, body: TestEventBody) -> DeliveryOut:
        delivery = await webhooks.SendTestEvent(
            webhooks_pb2.SendTestEventRequest(biz_name=biz_name, endpoint_id=body.endpoint_id),
            timeout=RPC_TIMEOUT_S,
        )
        return DeliveryOut.of(delivery)

    return router
