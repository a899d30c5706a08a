"""Wires the media relay together."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from parley.relay.v1 import relay_pb2, relay_pb2_grpc
from parley.rooms.v1 import relay_reports_pb2_grpc

from services.core.config import ServiceName
from services.core.service import ServiceRuntime
from services.relay.grpc_api import RelayServicer
from services.relay.metering import MeteringTicker
from services.relay.quality import QualityWatch, WeakRules
from services.relay.registration import Registration
from services.relay.relay import Relay
from services.relay.relay_metrics import RelayMetrics
from services.relay.room_reports import RoomReports
from services.relay.workers import RelayWorkers, plan_workers, worker_count

log = structlog.get_logger(__name__)

# How long one registration or load report may take.
ROOMS_TIMEOUT_S = 2.0


def build(runtime: ServiceRuntime) -> Relay:
    settings = runtime.settings.relay
    relay_metrics = RelayMetrics(runtime.metrics)
    ticker = MeteringTicker(
        runtime.events, interval_s=settings.metering_interval_s, on_tick=relay_metrics.ticked
    )
    rooms = relay_reports_pb2_grpc.RelayReportServiceStub(runtime.channel(ServiceName.ROOMS))
    relay_id = settings.relay_id or uuid.uuid4().hex
    reports = RoomReports(rooms, relay_id=relay_id, timeout_s=ROOMS_TIMEOUT_S)
    relay = Relay(settings, ticker, reports)
    relay_metrics.watch(relay)
    quality = QualityWatch(relay, reports, WeakRules.of(settings))
    runtime.grpc.add_servicer(
        relay_pb2_grpc.add_RelayServiceServicer_to_server,
        RelayServicer(relay),
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"],
    )
    registration = Registration(
        relay,
        rooms,
        relay_id=relay_id,
        address=settings.advertised_grpc_address or runtime.settings.grpc.address_of(ServiceName.RELAY),
        capacity=settings.capacity,
        timeout_s=ROOMS_TIMEOUT_S,
    )

    # Worker 0 (this process) waits for the others in its start and passes its drain on to them.
    count = worker_count(settings.workers)
    workers = RelayWorkers(runtime.settings, relay_id, plan_workers(runtime.settings, relay_id, count))
    if workers.plans:
        runtime.readiness.add("relay_workers", workers.all_running)

    async def start_workers() -> None:
        workers.start()

    async def start() -> None:
        await workers.until_serving()
        ticker.start()
        reports.start()
        quality.start()
        registration.start()

    async def drain() -> None:
        workers.terminate()
        # The room manager sends no new rooms from now on; the rooms here keep their streams until they
        # end or the drain timeout passes, and `stop` closes what is left (5009).
        await registration.drain()
        log.info("relay_draining", feeds=len(relay.feeds), subscriptions=len(relay.subscriptions))
        try:
            await asyncio.wait_for(relay.emptied(), settings.drain_timeout_s)
        except TimeoutError:
            log.warning(
                "relay_drain_timed_out", feeds=len(relay.feeds), subscriptions=len(relay.subscriptions)
            )

    async def close_streams() -> None:
        # Every stream's final tick is in the outbox once the relay has closed; the broker is still up.
        await registration.stop()
        await quality.stop()
        await relay.close()
        await ticker.stop()
        # The relay's own closes (5009) reach the room manager if it is still there.
        await reports.stop(ROOMS_TIMEOUT_S)

    async def stop_workers() -> None:
        # Each worker drains as this one did, begun at the same signal, and gets as long.
        await workers.stop(settings.drain_timeout_s + runtime.settings.drain_timeout_s)

    runtime.on_start(relay.open)
    runtime.on_start(start_workers)
    runtime.on_ready(start)
    runtime.on_drain(drain)
    # Stop hooks run last first: the workers are waited for after this worker's own streams closed.
    runtime.on_stop(stop_workers)
    runtime.on_stop(close_streams)
    return relay
