"""Billing's gRPC and Kafka handlers: thin translations onto the usage ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import structlog
from parley.billing.v1 import billing_pb2, billing_pb2_grpc
from parley.rooms.v1 import events_pb2 as room_events

from services.billing.ledger import RoomCreation, UsageLedger
from services.core.errors import INVALID_ARGUMENT
from services.core.events import Envelope

log = structlog.get_logger(__name__)


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, ledger: UsageLedger) -> None:
        self._ledger = ledger

    async def GetUsageOverview(
        self, request: billing_pb2.GetUsageOverviewRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.UsageOverview:
        if not request.biz_name:
            raise INVALID_ARGUMENT("biz_name is required")
        start = request.start_time.ToDatetime(tzinfo=UTC)
        end = request.end_time.ToDatetime(tzinfo=UTC) if request.HasField("end_time") else datetime.now(UTC)
        rooms = await self._ledger.count_rooms(request.biz_name, start, end)
        return billing_pb2.UsageOverview(biz_name=request.biz_name, rooms=rooms)


class RoomEventHandlers:
    def __init__(self, ledger: UsageLedger) -> None:
        self._ledger = ledger

    async def room_created(self, event: room_events.RoomCreated, envelope: Envelope) -> None:
        recorded = await self._ledger.record_room_created(
            RoomCreation(
                event_id=envelope.id,
                room_id=event.room_id,
                biz_name=event.biz_name,
                created_at=event.created_at.ToDatetime(tzinfo=UTC),
            )
        )
        log.info("room_usage_recorded" if recorded else "room_usage_duplicate", room_id=event.room_id)
