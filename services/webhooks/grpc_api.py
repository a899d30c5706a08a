"""gRPC handlers of the webhook dispatcher (proto/parley/webhooks/v1/webhooks.proto): thin translations
onto the store, for operators through the gateway and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
import httpx
from parley.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from sqlalchemy import Row

from services.core.errors import INVALID_ARGUMENT, NOT_FOUND, require_fields
from services.core.timestamps import timestamp
from services.webhooks import bodies
from services.webhooks.apps import AppDirectory, AppInfo
from services.webhooks.store import CLOUDEVENTS, SEED_KINDS, NewDelivery, WebhookStore, seed_endpoint_id

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
# Delivering the dispatcher's own outcomes to an endpoint would make an outcome per outcome, forever.
UNSUBSCRIBABLE_PREFIX = "parley.webhooks."


def _delivery(row: Row[Any]) -> webhooks_pb2.Delivery:
    message = webhooks_pb2.Delivery(
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        url=row.url or "",
        http_status=row.last_status,
        attempt=row.attempts,
        biz_name=row.biz_name,
        endpoint_id=row.endpoint_id,
        event_type=row.event_type,
        biz_request_id=row.biz_request_id,
        status=row.status,
        last_error=row.last_error,
        last_latency_ms=row.last_latency_ms,
        created_at=timestamp(row.created_at),
        ordering_key=row.ordering_key,
    )
    if row.status == "pending":
        message.next_attempt_at.CopyFrom(timestamp(row.next_attempt_at))
    if row.delivered_at is not None:
        message.delivered_at.CopyFrom(timestamp(row.delivered_at))
    return message


def _endpoint(row: Row[Any]) -> webhooks_pb2.Endpoint:
    return webhooks_pb2.Endpoint(
        endpoint_id=row.endpoint_id,
        biz_name=row.biz_name,
        kind=row.kind,
        url=row.url,
        event_types=row.event_types.split(),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=timestamp(row.created_at),
    )


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise INVALID_ARGUMENT(f"url: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise INVALID_ARGUMENT("url: an http or https URL with a host")


def _check_event_types(event_types: list[str]) -> None:
    for event_type in event_types:
        if event_type.startswith(UNSUBSCRIBABLE_PREFIX) or bodies.decode(b"", event_type) is None:
            raise INVALID_ARGUMENT(f"event_types: {event_type!r} is not an event type of the topic catalogue")


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(
        self,
        store: WebhookStore,
        apps: AppDirectory,
        *,
        queued: Callable[[], None],
        endpoints_changed: Callable[[], None],
        secret_rotated: Callable[[str], None],
    ) -> None:
        self._store = store
        self._apps = apps
        self._queued = queued
        self._endpoints_changed = endpoints_changed
        self._secret_rotated = secret_rotated

    async def _app(self, biz_name: str) -> AppInfo:
        require_fields(biz_name=biz_name)
        app = await self._apps.get(biz_name)
        if app is None:
            raise NOT_FOUND(f"no app {biz_name}")
        return app

    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: Context
    ) -> webhooks_pb2.ListDeliveriesResponse:
        require_fields(biz_name=request.biz_name)
        if request.status and request.status not in ("pending", "delivered", "dead"):
            raise INVALID_ARGUMENT("status: pending, delivered or dead")
        limit = min(request.limit or DEFAULT_LIMIT, MAX_LIMIT)
        rows = await self._store.list_deliveries(
            request.biz_name, limit=limit, status=request.status, endpoint_id=request.endpoint_id
        )
        return webhooks_pb2.ListDeliveriesResponse(deliveries=[_delivery(row) for row in rows])

    async def GetDelivery(
        self, request: webhooks_pb2.GetDeliveryRequest, context: Context
    ) -> webhooks_pb2.DeliveryDetail:
        require_fields(biz_name=request.biz_name, delivery_id=request.delivery_id)
        row, tried = await self._store.delivery(request.biz_name, request.delivery_id)
        return webhooks_pb2.DeliveryDetail(
            delivery=_delivery(row),
            body=row.body,
            attempts=[
                webhooks_pb2.Attempt(
                    attempt=attempt.attempt,
                    started_at=timestamp(attempt.started_at),
                    latency_ms=attempt.latency_ms,
                    http_status=attempt.http_status,
                    outcome=attempt.outcome,
                    error=attempt.error,
                )
                for attempt in tried
            ],
        )

    async def Redeliver(
        self, request: webhooks_pb2.GetDeliveryRequest, context: Context
    ) -> webhooks_pb2.Delivery:
        require_fields(biz_name=request.biz_name, delivery_id=request.delivery_id)
        row, _ = await self._store.delivery(request.biz_name, request.delivery_id)
        if row.status == "delivered":
            raise INVALID_ARGUMENT("this delivery succeeded; only failed ones are redelivered")
        await self._store.redeliver(request.biz_name, [request.delivery_id], datetime.now(UTC))
        self._queued()
        row, _ = await self._store.delivery(request.biz_name, request.delivery_id)
        return _delivery(row)

    async def RedeliverFailed(
        self, request: webhooks_pb2.RedeliverFailedRequest, context: Context
    ) -> webhooks_pb2.RedeliverFailedResponse:
        require_fields(biz_name=request.biz_name)
        count = await self._store.redeliver(
            request.biz_name, None, datetime.now(UTC), endpoint_id=request.endpoint_id
        )
        self._queued()
        return webhooks_pb2.RedeliverFailedResponse(count=count)

    async def SendTestEvent(
        self, request: webhooks_pb2.SendTestEventRequest, context: Context
    ) -> webhooks_pb2.Delivery:
        require_fields(endpoint_id=request.endpoint_id)
        app = await self._app(request.biz_name)
        now = datetime.now(UTC)
        if request.endpoint_id in (seed_endpoint_id(request.biz_name, kind) for kind in SEED_KINDS):
            kind = request.endpoint_id.rsplit(".", 1)[1]
            async with self._store.begin() as connection:
                await self._store.sync_seed_endpoint(connection, request.biz_name, kind, app.url(kind), now)
        endpoint = await self._store.endpoint(request.biz_name, request.endpoint_id)
        event_id = str(uuid.uuid4())
        body = bodies.test_event(request.biz_name, event_id, endpoint.kind, now)
        async with self._store.begin() as connection:
            delivery_id = await self._store.enqueue(
                connection,
                NewDelivery(
                    endpoint_id=endpoint.endpoint_id,
                    biz_name=request.biz_name,
                    ordering_key=event_id,
                    event_id=event_id,
                    event_type="parley.webhooks.v1.TestEvent",
                    biz_request_id=event_id,
                    body=bodies.encode(body),
                    event_time=now,
                ),
                first_attempt_at=now,
                now=now,
            )
        self._queued()
        row, _ = await self._store.delivery(request.biz_name, str(delivery_id))
        return _delivery(row)

    async def ListEndpoints(
        self, request: webhooks_pb2.ListEndpointsRequest, context: Context
    ) -> webhooks_pb2.ListEndpointsResponse:
        app = await self._app(request.biz_name)
        now = datetime.now(UTC)
        async with self._store.begin() as connection:
            for kind in SEED_KINDS:
                await self._store.sync_seed_endpoint(connection, request.biz_name, kind, app.url(kind), now)
        rows = await self._store.list_endpoints(request.biz_name)
        return webhooks_pb2.ListEndpointsResponse(endpoints=[_endpoint(row) for row in rows])

    async def CreateEndpoint(
        self, request: webhooks_pb2.CreateEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        await self._app(request.biz_name)
        _check_url(request.url)
        if not request.event_types:
            raise INVALID_ARGUMENT("event_types: at least one")
        _check_event_types(list(request.event_types))
        row = await self._store.create_endpoint(
            request.biz_name, request.url, list(request.event_types), datetime.now(UTC)
        )
        self._endpoints_changed()
        return _endpoint(row)

    async def UpdateEndpoint(
        self, request: webhooks_pb2.UpdateEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        require_fields(biz_name=request.biz_name, endpoint_id=request.endpoint_id)
        if request.url:
            _check_url(request.url)
        _check_event_types(list(request.event_types))
        row = await self._store.update_endpoint(
            request.biz_name,
            request.endpoint_id,
            url=request.url,
            event_types=list(request.event_types),
            enabled=request.enabled if request.HasField("enabled") else None,
            now=datetime.now(UTC),
        )
        self._endpoints_changed()
        return _endpoint(row)

    async def DeleteEndpoint(
        self, request: webhooks_pb2.EndpointRequest, context: Context
    ) -> webhooks_pb2.DeleteEndpointResponse:
        require_fields(biz_name=request.biz_name, endpoint_id=request.endpoint_id)
        endpoint = await self._store.endpoint(request.biz_name, request.endpoint_id)
        if endpoint.kind != CLOUDEVENTS:
            raise INVALID_ARGUMENT(
                "a seed endpoint goes with the app's URL setting (PATCH /v1/apps/{bizName})"
            )
        await self._store.delete_endpoint(request.biz_name, request.endpoint_id, datetime.now(UTC))
        self._endpoints_changed()
        return webhooks_pb2.DeleteEndpointResponse()

    async def GetSecret(
        self, request: webhooks_pb2.GetSecretRequest, context: Context
    ) -> webhooks_pb2.Secret:
        await self._app(request.biz_name)
        now = datetime.now(UTC)
        return self._secret(await self._store.secrets(request.biz_name, now), now)

    async def RotateSecret(
        self, request: webhooks_pb2.GetSecretRequest, context: Context
    ) -> webhooks_pb2.Secret:
        await self._app(request.biz_name)
        now = datetime.now(UTC)
        rotated = await self._store.rotate_secret(request.biz_name, now)
        self._secret_rotated(request.biz_name)
        return self._secret(rotated, now)

    @staticmethod
    def _secret(secrets: Any, now: datetime) -> webhooks_pb2.Secret:
        message = webhooks_pb2.Secret(secret=secrets.current)
        if len(secrets.active(now)) > 1:
            message.previous_valid_until.CopyFrom(timestamp(secrets.previous_valid_until))
        return message
