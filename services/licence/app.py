"""Wires the licence service together."""

from __future__ import annotations

from parley.billing.v1 import events_pb2 as billing_events
from parley.licence.v1 import licence_pb2, licence_pb2_grpc

from services.core.config import ServiceName
from services.core.db import create_engine, database_answers
from services.core.events import Envelope, EventConsumer
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.core.service import ServiceRuntime
from services.core.topics import Topic
from services.licence import tables
from services.licence.grpc_api import LicenceServicer
from services.licence.licensing import Licensing
from services.licence.master_key import load_master_key
from services.licence.sql_store import SqlLicenceStore


def build(runtime: ServiceRuntime) -> Licensing:
    engine = create_engine(runtime.settings.database_url_for(ServiceName.LICENCE))
    outbox = Outbox(tables.outbox, engine, runtime.events)
    licensing = Licensing(SqlLicenceStore(engine, outbox), load_master_key(runtime.settings))

    async def migrate() -> None:
        await upgrade_to_head(engine, "services.licence")

    runtime.on_migrate(migrate)
    runtime.readiness.add("database", lambda: database_answers(engine))
    runtime.on_ready(outbox.start)
    runtime.on_stop(engine.dispose)
    runtime.on_stop(outbox.stop)

    accounts = EventConsumer(runtime.broker, Topic.BILLING, group_id="parley-licence")

    @accounts.on(billing_events.AccountStatusChanged)
    async def account_status_changed(event: billing_events.AccountStatusChanged, envelope: Envelope) -> None:
        await licensing.authorisations.set_account_status(
            event.biz_name, event.in_arrears, event_id=envelope.id
        )

    runtime.grpc.add_servicer(
        licence_pb2_grpc.add_LicenceServiceServicer_to_server,
        LicenceServicer(licensing),
        licence_pb2.DESCRIPTOR.services_by_name["LicenceService"],
    )
    return licensing
