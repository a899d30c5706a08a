"""Wires the signalling gateway together: its HTTP API, the WebSocket protocol (docs/protocol.md) and the
platform's health. Its gRPC server takes the room manager's pushes to the sessions it holds
(SessionDelivery)."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from parley.billing.v1.billing_pb2_grpc import BillingServiceStub
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.recorder.v1.recorder_pb2_grpc import RecorderServiceStub
from parley.rooms.v1 import delivery_pb2, delivery_pb2_grpc
from parley.rooms.v1.room_sessions_pb2_grpc import RoomSessionServiceStub
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub
from parley.webhooks.v1.webhooks_pb2_grpc import WebhookServiceStub

from services.core.config import ServiceName
from services.core.http_server import HttpServer
from services.core.metrics import HttpMetricsMiddleware
from services.core.ops import ops_routes
from services.core.rpc import CHANNEL_OPTIONS
from services.core.service import ServiceRuntime
from services.gateway.billing_routes import billing_router
from services.gateway.call_commands import CallCommands
from services.gateway.commands import Commands, ConnectThrottle
from services.gateway.console_routes import CONSOLE_ASSETS_PATH, console_assets, console_router
from services.gateway.health import PlatformHealth
from services.gateway.http_api import create_http_app, operator_only
from services.gateway.ice_servers import IceServerGrant
from services.gateway.licence_routes import licence_device_router, licence_operator_router
from services.gateway.p2p_commands import P2PCommands
from services.gateway.pushes import AuthorisationPushes
from services.gateway.record_commands import RecordCommands
from services.gateway.recording_routes import recording_routers
from services.gateway.room_commands import RelayChannels, RoomCommands
from services.gateway.room_pushes import SessionDeliveryServicer
from services.gateway.room_sessions import RoomSessions
from services.gateway.rooms_routes import rooms_router
from services.gateway.sessions import SessionTable
from services.gateway.web_routes import OriginPolicy, web_router
from services.gateway.webhook_routes import webhook_router
from services.gateway.websocket import ConnectionLimits, WebSocketEndpoint, websocket_first


def build(runtime: ServiceRuntime) -> HttpServer:
    settings = runtime.settings.gateway
    others: dict[ServiceName, grpc.aio.Channel] = {
        name: runtime.channel(name) for name in ServiceName if name is not ServiceName.GATEWAY
    }
    app = create_http_app(health=PlatformHealth(others, timeout_s=settings.health_timeout_s))
    operator = [operator_only(settings.operator_token)]
    # The room manager's public API (operators' rooms, a session's create_room) and the one for the
    # sessions this gateway holds (docs/internal-apis.md).
    public_rooms = RoomServiceStub(runtime.channel(ServiceName.ROOMS))
    rooms = RoomSessionServiceStub(runtime.channel(ServiceName.ROOMS))
    app.include_router(rooms_router(public_rooms), dependencies=operator)
    licence = LicenceServiceStub(runtime.channel(ServiceName.LICENCE))
    app.include_router(licence_operator_router(licence), dependencies=operator)
    app.include_router(licence_device_router(licence, settings.operator_token))
    app.include_router(
        billing_router(BillingServiceStub(runtime.channel(ServiceName.BILLING))), dependencies=operator
    )
    recorder = RecorderServiceStub(runtime.channel(ServiceName.RECORDER))
    for router in recording_routers(recorder):
        app.include_router(router, dependencies=operator)
    webhooks = WebhookServiceStub(runtime.channel(ServiceName.WEBHOOKS))
    app.include_router(webhook_router(webhooks), dependencies=operator)
    sessions = SessionTable()
    heartbeat_channel = grpc.aio.insecure_channel(
        runtime.settings.grpc.address_of(ServiceName.ROOMS), options=CHANNEL_OPTIONS
    )
    room_sessions = RoomSessions(
        rooms,
        RoomSessionServiceStub(heartbeat_channel),
        sessions,
        gateway_address=runtime.settings.grpc.address_of(ServiceName.GATEWAY),
        timeout_s=settings.rooms_timeout_s,
        heartbeat_s=runtime.settings.rooms.gateway_lease_s / 3,
    )
    commands = Commands(
        licence,
        sessions,
        ConnectThrottle(limit=settings.ws_connect_failures, window_s=settings.ws_connect_failure_window_s),
        runtime.tracer_provider.get_tracer("services.gateway.commands"),
        licence_timeout_s=settings.ws_licence_timeout_s,
        ice_servers=IceServerGrant(settings.client_ice),
        hooks=room_sessions,
    )
    relays = RelayChannels(runtime.tracer_provider)
    commands.extend(
        RoomCommands(
            public_rooms,
            rooms,
            room_sessions,
            relays,
            timeout_s=settings.rooms_timeout_s,
            relay_timeout_s=settings.relay_timeout_s,
        ).commands()
    )
    commands.extend(
        CallCommands(
            rooms,
            room_sessions,
            timeout_s=settings.rooms_timeout_s,
            call_timeout_s=settings.rooms_timeout_s + runtime.settings.rooms.licence_timeout_s,
        ).commands()
    )
    commands.extend(P2PCommands(rooms, room_sessions, timeout_s=settings.rooms_timeout_s).commands())
    commands.extend(RecordCommands(recorder, timeout_s=settings.relay_timeout_s).commands())
    runtime.grpc.add_servicer(
        delivery_pb2_grpc.add_SessionDeliveryServicer_to_server,
        SessionDeliveryServicer(sessions),
        delivery_pb2.DESCRIPTOR.services_by_name["SessionDelivery"],
    )
    limits = ConnectionLimits(
        max_frame_bytes=settings.ws_max_frame_bytes,
        rate_per_s=settings.ws_rate_per_s,
        burst=settings.ws_rate_burst,
        outbound_queue=settings.ws_outbound_queue,
    )
    origins = OriginPolicy(settings.allowed_origins)
    app.include_router(web_router(origins))
    # The console's page and assets are public; every API call it makes is an operator's (docs/console.md).
    app.include_router(console_router())
    app.mount(CONSOLE_ASSETS_PATH, console_assets(), name="console-assets")
    endpoint = WebSocketEndpoint(
        commands, sessions, limits, origins=origins, connection_ended=room_sessions.connection_ended
    )
    # /livez, /readyz and /metrics on the gateway's own port too (services/core/ops.py).
    app.router.routes.extend(ops_routes(runtime.metrics, runtime.readiness))
    app.add_middleware(HttpMetricsMiddleware, metrics=runtime.metrics)
    runtime.metrics.gauge(
        "parley_websocket_sessions", "WebSocket sessions connected to this gateway", lambda: len(sessions)
    )
    pushes = AuthorisationPushes(sessions, runtime.broker, ready_timeout_s=settings.push_ready_timeout_s)
    runtime.on_ready(pushes.wait_until_positioned)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=runtime.tracer_provider,
        excluded_urls="healthz,livez,readyz,metrics,sdk,phone,console",
    )
    # The WebSocket protocol does not pass through the HTTP app: it is traced per command
    # (services.gateway.commands), where the ASGI middleware would hold one span open for a connection's
    # whole life, with a child span for every frame.
    http = HttpServer(
        websocket_first(app, "/ws/v1", endpoint),
        host=settings.http_host,
        port=settings.http_port,
        ws_max_frame_bytes=settings.ws_max_frame_bytes,
    )
    runtime.on_start(http.start)
    runtime.on_ready(room_sessions.start_heartbeat)
    # Stop hooks run in reverse: the connections close (and their sessions detach) before the heartbeat
    # stops and the relay channels close.
    runtime.on_stop(relays.close)
    runtime.on_stop(heartbeat_channel.close)
    runtime.on_stop(room_sessions.stop_heartbeat)
    runtime.on_stop(http.stop)
    return http
