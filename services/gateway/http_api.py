"""The gateway's HTTP API: platform health and the operator routes (OpenAPI at /docs, /openapi.json).

Handlers only translate: JSON in, a gRPC call to the owning service, JSON out. Every error answers
`{"code", "msg", "reason"}` with the code users know and an HTTP status derived from its gRPC status.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any

import grpc
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic.alias_generators import to_camel

from services.core.errors import (
    INVALID_ARGUMENT,
    UNAUTHENTICATED,
    ParleyError,
    from_rpc_error,
    http_status_of,
)
from services.gateway.health import PlatformHealth

log = structlog.get_logger(__name__)

# Swagger UI's assets ship inside the package (swagger_ui/README.md): /docs must render without a CDN.
SWAGGER_UI_ASSETS = Path(__file__).parent / "swagger_ui"
SWAGGER_UI_PATH = "/docs/assets"


class ApiModel(BaseModel):
    """JSON bodies of the HTTP API use the seeds' camelCase names (bizName, appId, expireTime)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _error_response(error: ParleyError) -> JSONResponse:
    return JSONResponse(error.as_dict(), status_code=http_status_of(error))


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def operator_only(operator_token: SecretStr | None) -> Any:
    """A dependency that admits operators: a bearer token when one is configured, else loopback clients."""

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

    return Depends(require_operator)


def create_http_app(*, health: PlatformHealth) -> FastAPI:
    """The app with health and error handling; the routes of each area are included by the wiring."""
    # FastAPI's own /docs and /redoc load their scripts from CDNs; /docs is served below from the package.
    app = FastAPI(title="Parley gateway", version="1", docs_url=None, redoc_url=None)
    app.mount(SWAGGER_UI_PATH, StaticFiles(directory=SWAGGER_UI_ASSETS), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_UI_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI_PATH}/favicon-32x32.png",
        )

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

    return app
