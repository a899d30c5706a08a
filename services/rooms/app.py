"""Wires the room manager together: the manager's rules behind gRPC, pushes to the gateways, facts to the
topics, stops to the relays, and the sweep that applies the timed rules."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import redis.asyncio as redis
import structlog
from parley.billing.v1 import events_pb2 as billing_events
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.recorder.v1.recorder_pb2_grpc import RecorderServiceStub
from parley.rooms.v1 import (
    relay_reports_pb2,
    relay_reports_pb2_grpc,
    room_sessions_pb2,
    room_sessions_pb2_grpc,
    rooms_pb2,
    rooms_pb2_grpc,
)

from services.core.channels import ChannelPool
from services.core.config import ServiceName
from services.core.events import Envelope, EventConsumer
from services.core.service import ServiceRuntime
from services.core.topics import Topic
from services.rooms.delivery import GatewayDelivery
from services.rooms.facts import FactRelay, stage
from services.rooms.grpc_api import RelayReportServicer, RoomServicer, RoomSessionServicer
from services.rooms.manager import RoomManager, RoomRules
from services.rooms.recording_events import AutoRecordApps, DefaultRecording, consume_recording_events
from services.rooms.redis_store import LeadershipLost, RedisRoomStore, RoomsFenced
from services.rooms.relay_orders import RelayOrders
from services.rooms.store import InProcessRoomStore, RoomStore

log = structlog.get_logger(__name__)

# How often the timed rules are applied: graces and timeouts end within this much of their time.
SWEEP_INTERVAL_S = 0.25
# How long a Deliver or a relay stop may take.
PEER_CALL_TIMEOUT_S = 2.0


class Dispatcher:
    """Sends on what the manager's last operations caused."""

    def __init__(self, manager: RoomManager, runtime: ServiceRuntime, channels: ChannelPool) -> None:
        self._manager = manager
        self._store = manager.store
        self.facts = FactRelay(self._store, runtime.events)
        self.deliveries = GatewayDelivery(
            manager.sessions, channels, timeout_s=PEER_CALL_TIMEOUT_S, changed=self
        )
        self.relay_orders = RelayOrders(channels, timeout_s=PEER_CALL_TIMEOUT_S)

    async def __call__(self) -> None:
        # The outcome and the commit are taken together, before any wait: what an operation caused is sent
        # on once the state that caused it is durable, and its facts are staged in the same commit.
        outcome = self._manager.outcome()
        try:
            await self._store.commit(stage(outcome.changes))
        except RoomsFenced as fenced:
            # Another room manager owns these rooms now: nothing of what this one did goes out.
            log.warning("rooms_owned_elsewhere", room_ids=fenced.room_ids)
            return
        except Exception:
            # The store keeps the writes and facts for its next commit; the pushes and relay orders still
            # go, as this room manager already acts on the state they describe.
            log.exception("room_store_commit_failed")
        self.facts.notify()
        self.deliveries.wake(outcome.gateways)
        self.relay_orders.send(outcome.relay_orders)


def _store(runtime: ServiceRuntime) -> RoomStore:
    settings = runtime.settings.rooms
    if settings.store == "memory":
        return InProcessRoomStore()
    client = redis.Redis.from_url(settings.redis_url)
    runtime.on_stop(client.aclose)
    # On the Redis store the room manager serves only while the store answers (services/core/ops.py).
    runtime.readiness.add("redis", client.ping)
    # The outbox's publisher holds its lease as long as a room does: a dead room manager's facts go out
    # within a lease.
    return RedisRoomStore(
        client,
        prefix=settings.redis_prefix,
        room_lease_s=settings.room_lease_s,
        publisher_lease_s=settings.room_lease_s,
    )


def build(runtime: ServiceRuntime) -> RoomManager:
    settings = runtime.settings.rooms
    store = _store(runtime)
    manager = RoomManager(
        RoomRules(
            session_grace_s=settings.session_grace_s,
            empty_room_grace_s=settings.empty_room_grace_s,
            max_participants=settings.max_participants,
            max_feeds_per_participant=settings.max_feeds_per_participant,
            max_subscriptions_per_participant=settings.max_subscriptions_per_participant,
            negotiation_timeout_s=settings.negotiation_timeout_s,
            gateway_lease_s=settings.gateway_lease_s,
            call_ring_timeout_s=settings.call_ring_timeout_s,
            relay_lease_s=settings.relay_lease_s,
        ),
        relay_address=runtime.settings.grpc.address_of(ServiceName.RELAY),
        # Times kept in a shared store are read by the next process: wall clock, not this one's monotonic.
        clock=time.monotonic if settings.store == "memory" else time.time,
        store=store,
    )
    channels = ChannelPool(runtime.tracer_provider)
    dispatch = Dispatcher(manager, runtime, channels)
    licence = LicenceServiceStub(runtime.channel(ServiceName.LICENCE))
    recording = DefaultRecording(
        manager,
        RecorderServiceStub(runtime.channel(ServiceName.RECORDER)),
        dispatch,
        timeout_s=runtime.settings.recorder.start_timeout_s,
        apps=AutoRecordApps(licence, ttl_s=settings.app_settings_ttl_s, timeout_s=settings.licence_timeout_s),
    )
    consume_recording_events(
        EventConsumer(runtime.broker, Topic.RECORDING, group_id="parley-rooms-recording"), manager, dispatch
    )
    # Apps in arrears (billing, docs/billing.md): every process reads the whole topic from the start in a
    # group of its own, so a restarted room manager knows them again; the last fact of an app wins.
    accounts = EventConsumer(runtime.broker, Topic.BILLING, group_id=f"parley-rooms-accounts-{uuid.uuid4()}")

    @accounts.on(billing_events.AccountStatusChanged)
    async def account_status_changed(event: billing_events.AccountStatusChanged, _: Envelope) -> None:
        manager.set_account_status(event.biz_name, event.in_arrears)

    # One servicer per API, by caller (docs/internal-apis.md).
    runtime.grpc.add_servicer(
        rooms_pb2_grpc.add_RoomServiceServicer_to_server,
        RoomServicer(manager, dispatch, recording=recording),
        rooms_pb2.DESCRIPTOR.services_by_name["RoomService"],
    )
    runtime.grpc.add_servicer(
        room_sessions_pb2_grpc.add_RoomSessionServiceServicer_to_server,
        RoomSessionServicer(
            manager,
            dispatch,
            licence,
            licence_timeout_s=settings.licence_timeout_s,
            recording=recording,
        ),
        room_sessions_pb2.DESCRIPTOR.services_by_name["RoomSessionService"],
    )
    runtime.grpc.add_servicer(
        relay_reports_pb2_grpc.add_RelayReportServiceServicer_to_server,
        RelayReportServicer(manager, dispatch),
        relay_reports_pb2.DESCRIPTOR.services_by_name["RelayReportService"],
    )
    sweeper: list[asyncio.Task[None]] = []

    async def judge_relays() -> None:
        """Leading now: the relays the previous leader heard from are placed on at once, and none is judged
        dead before it had a lease to report here."""
        manager.relays.lead()
        manager.relays.learn(await store.share_relays([], settings.relay_lease_s))

    async def keep() -> None:
        kept_at = time.monotonic()
        while True:
            await asyncio.sleep(settings.room_lease_s / 3)
            try:
                await store.keep()
                kept_at = time.monotonic()
                relays = manager.relays
                relays.learn(await store.share_relays(relays.heard(), relays.lease_s))
            except LeadershipLost:
                log.error("room_manager_leadership_lost", reason="another room manager leads")
                runtime.request_stop()
                return
            except Exception as error:
                log.warning("room_store_keep_failed", error=repr(error))
                if time.monotonic() - kept_at > settings.room_lease_s:
                    # Another room manager may lead by now: serving on would split the rooms' clients.
                    log.error("room_manager_leadership_lost", reason="store unreachable for a lease")
                    runtime.request_stop()
                    return

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                manager.sweep()
            except Exception:
                log.exception("room_sweep_failed")
            await dispatch()

    async def start() -> None:
        await dispatch.facts.start()
        sweeper.append(asyncio.create_task(sweep(), name="room-sweep"))
        sweeper.append(asyncio.create_task(keep(), name="room-keep"))

    async def stop() -> None:
        for task in sweeper:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatch.deliveries.stop()
        await dispatch.relay_orders.stop(PEER_CALL_TIMEOUT_S)
        await dispatch.facts.stop(runtime.settings.drain_timeout_s)
        await channels.close()

    # A standby room manager waits here until it leads; then the rooms a previous room manager left are
    # served again, before gRPC listens.
    runtime.on_start(store.lead)
    runtime.on_start(store.recover)
    runtime.on_start(judge_relays)
    runtime.on_stop(store.resign)
    runtime.metrics.gauge("parley_rooms", "Live rooms", lambda: manager.rooms)
    runtime.metrics.gauge("parley_participants", "Participants in live rooms", lambda: manager.participants)
    runtime.metrics.gauge(
        "parley_client_sessions",
        "Client sessions the room manager keeps (attached or in grace)",
        lambda: len(manager.sessions),
    )
    runtime.on_ready(start)
    runtime.on_stop(stop)
    return manager
