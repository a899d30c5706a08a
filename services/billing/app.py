"""Wires billing metering together."""

from __future__ import annotations

from parley.billing.v1 import billing_pb2, billing_pb2_grpc
from parley.rooms.v1 import events_pb2 as room_events

from services.billing.handlers import BillingServicer, RoomEventHandlers
from services.billing.ledger import UsageLedger
from services.core.config import ServiceName
from services.core.db import create_engine
from services.core.events import EventConsumer
from services.core.migrations import upgrade_to_head
from services.core.service import ServiceRuntime
from services.core.topics import Topic


def build(runtime: ServiceRuntime) -> None:
    engine = create_engine(runtime.settings.database_url_for(ServiceName.BILLING))
    ledger = UsageLedger(engine)

    async def migrate() -> None:
        await upgrade_to_head(engine, "services.billing")

    runtime.on_migrate(migrate)
    runtime.on_stop(engine.dispose)

    rooms = EventConsumer(runtime.broker, Topic.ROOM, group_id="parley-billing")
    rooms.on(room_events.RoomCreated)(RoomEventHandlers(ledger).room_created)

    runtime.grpc.add_servicer(
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        BillingServicer(ledger),
        billing_pb2.DESCRIPTOR.services_by_name["BillingService"],
    )
