"""The gateway's HTTP API: platform health and the operator routes (OpenAPI at /docs, /openapi.json).

Handlers only translate: JSON in, a gRPC call to the owning service, JSON out. Every error answers
`{"code", "msg", "reason"}` with the code users know and an HTTP status derived from its gRPC status.
"""

from __future__ import annotations

import hmac
import ipaddress

import grpc
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc
from pydantic import BaseModel, Field, SecretStr

from services.core.errors import (
    INVALID_ARGUMENT,
    UNAUTHENTICATED,
    ParleyError,
    from_rpc_error,
    http_status_of,
)
from services.gateway.health import PlatformHealth

log = structlog.get_logger(__name__)


class CreateRoomBody(BaseModel):
    biz_name: str = Field(min_length=1, max_length=128)
    uid: str = Field(min_length=1, max_length=128)


class RoomOut(BaseModel):
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: str


def _error_response(error: ParleyError) -> JSONResponse:
    return JSONResponse(error.as_dict(), status_code=http_status_of(error))


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_http_app(
    *, health: PlatformHealth, rooms: rooms_pb2_grpc.RoomServiceStub, operator_token: SecretStr | None
) -> FastAPI:
    app = FastAPI(title="Parley gateway", version="1")

    def require_operator(request: Request) -> None:
        if operator_token is None:
            if not _is_loopback(request.client.host if request.client else None):
                raise UNAUTHENTICATED(
                    "operator routes answer loopback clients unless an operator token is set"
                )
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expected = operator_token.get_secret_value()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise UNAUTHENTICATED()

    @app.exception_handler(ParleyError)
    async def on_domain_error(_: Request, error: ParleyError) -> JSONResponse:
        log.info("request_refused", reason=error.kind.reason, code=error.code, msg=error.message)
        return _error_response(error)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_rpc_error(_: Request, error: grpc.aio.AioRpcError) -> JSONResponse:
        domain_error = from_rpc_error(error)
        log.warning("upstream_failed", reason=domain_error.kind.reason, msg=domain_error.message)
        return _error_response(domain_error)

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _error_response(INVALID_ARGUMENT(f"{where}: {first.get('msg', 'invalid request')}"))

    @app.get("/healthz", summary="Health of every service; 503 names the ones not serving")
    async def healthz() -> JSONResponse:
        report = await health.check()
        return JSONResponse(report.as_dict(), status_code=200 if report.healthy else 503)

    operator_only = [Depends(require_operator)]

    @app.post("/v1/rooms", status_code=201, dependencies=operator_only, summary="Create a room (server API)")
    async def create_room(body: CreateRoomBody) -> RoomOut:
        response = await rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(biz_name=body.biz_name, creator_uid=body.uid), timeout=5
        )
        room = response.room
        return RoomOut(
            room_id=room.room_id,
            rtoken=room.rtoken,
            biz_name=room.biz_name,
            creator_uid=room.creator_uid,
            created_at=room.created_at.ToJsonString(),
        )

    return app
