"""Wires the recorder together: jobs in its database with their events in its outbox, the API behind
gRPC, the room manager's facts that add and end feeds, the storage folder for files, and retention."""

from __future__ import annotations

import asyncio
import contextlib

from parley.recorder.v1 import recorder_pb2, recorder_pb2_grpc
from parley.relay.v1.relay_pb2_grpc import RelayServiceStub
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.channels import ChannelPool
from services.core.config import ServiceName
from services.core.db import create_engine, database_answers
from services.core.errors import StartupError
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.core.service import ServiceRuntime
from services.recorder import store
from services.recorder.grpc_api import RecorderServicer
from services.recorder.recorder import Recorder
from services.recorder.rooms import RoomManagerRooms, consume_room_facts
from services.recorder.storage import storage_for


def build(runtime: ServiceRuntime) -> Recorder:
    settings = runtime.settings.recorder
    storage_dir = runtime.settings.recordings_dir().resolve()
    engine = create_engine(runtime.settings.database_url_for(ServiceName.RECORDER))
    outbox = Outbox(store.outbox, engine, runtime.events)
    relays = ChannelPool(runtime.tracer_provider)
    recorder = Recorder(
        store.JobStore(engine, outbox),
        RoomManagerRooms(
            RoomServiceStub(runtime.channel(ServiceName.ROOMS)), timeout_s=settings.rpc_timeout_s
        ),
        lambda address: RelayServiceStub(relays.get(address)),
        settings,
        storage_dir,
        storage_for(settings, storage_dir),
    )
    runtime.grpc.add_servicer(
        recorder_pb2_grpc.add_RecorderServiceServicer_to_server,
        RecorderServicer(recorder, recorder.files),
        recorder_pb2.DESCRIPTOR.services_by_name["RecorderService"],
    )
    consume_room_facts(runtime.broker, recorder)

    async def migrate() -> None:
        await upgrade_to_head(engine, "services.recorder")

    async def prepare() -> None:
        try:
            storage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StartupError(f"recordings folder {storage_dir} is not usable: {error.strerror}") from None
        await recorder.recover()

    retention: list[asyncio.Task[None]] = []

    async def start_retention() -> None:
        retention.append(asyncio.create_task(recorder.files.keep_retention(), name="recording-retention"))

    async def stop_retention() -> None:
        for task in retention:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    runtime.on_migrate(migrate)
    runtime.on_start(prepare)
    runtime.metrics.gauge("parley_recordings_active", "Recording jobs running", lambda: recorder.live_jobs)
    runtime.readiness.add("database", lambda: database_answers(engine))
    runtime.on_ready(outbox.start)
    # After the outbox: retention's events are staged in it.
    runtime.on_ready(start_retention)
    # Stop hooks run in reverse: live jobs end (their events staged), then the outbox publishes them.
    runtime.on_stop(engine.dispose)
    runtime.on_stop(relays.close)
    runtime.on_stop(outbox.stop)
    runtime.on_stop(recorder.shutdown)
    runtime.on_stop(stop_retention)
    return recorder
