"""Wires the signalling gateway together: its HTTP API and the platform's health. Its gRPC server
carries only the standard health service until the WebSocket protocol (issue #4) needs an internal API."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from services.core.service import ServiceRuntime
from services.gateway.health import PlatformHealth
from services.gateway.http_api import create_http_app, operator_only
from services.gateway.http_server import HttpServer
from services.gateway.licence_routes import licence_device_router, licence_operator_router
from services.gateway.rooms_routes import rooms_router


def build(runtime: ServiceRuntime) -> HttpServer:
    settings = runtime.settings.gateway
    others: dict[ServiceName, grpc.aio.Channel] = {
        name: runtime.channel(name) for name in ServiceName if name is not ServiceName.GATEWAY
    }
    app = create_http_app(health=PlatformHealth(others, timeout_s=settings.health_timeout_s))
    operator = [operator_only(settings.operator_token)]
    app.include_router(
        rooms_router(RoomServiceStub(runtime.channel(ServiceName.ROOMS))), dependencies=operator
    )
    licence = LicenceServiceStub(runtime.channel(ServiceName.LICENCE))
    app.include_router(licence_operator_router(licence), dependencies=operator)
    app.include_router(licence_device_router(licence, settings.operator_token))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=runtime.tracer_provider, excluded_urls="healthz")
    http = HttpServer(app, host=settings.http_host, port=settings.http_port)
    runtime.on_start(http.start)
    runtime.on_stop(http.stop)
    return http
