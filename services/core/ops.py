"""What operators and orchestrators ask every service: is the process alive, can it serve, and its metrics.

- Liveness (`/livez`, gRPC health service `parley.liveness`): the process answers. It never looks at
  another service or a dependency, so a broker outage does not get every pod restarted.
- Readiness (`/readyz`, gRPC health service `parley.readiness`): the service can serve now — started and
  not draining, and its own dependencies answer (the Kafka broker; its database where it has one). Other
  Parley services are not among them: a gateway whose room manager is down still answers clients with an
  error, which beats a connection refused; `/healthz` on the gateway gives the platform's view.
- `/metrics`: the Prometheus text format (services/core/metrics.py).

The gateway serves these paths on its HTTP port; every service also serves them on `PARLEY_OPS__PORT`
when it is set (the chart sets it; `parley up` gives each service one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.core.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

LIVENESS_SERVICE = "parley.liveness"
READINESS_SERVICE = "parley.readiness"

Check = Callable[[], Awaitable[bool]]


class Readiness:
    """Named checks of what this service needs to serve, each bounded by a timeout and run concurrently."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def check(self) -> dict[str, bool]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def ready(self) -> bool:
        return all((await self.check()).values())

    async def _run(self, name: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._checks[name]()
        except Exception as error:
            log.info("readiness_check_failed", check=name, error=type(error).__name__)
            return False


def ops_routes(metrics: ServiceMetrics, readiness: Readiness) -> list[Route]:
    async def livez(_: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await readiness.check()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
        )

    async def metrics_text(_: Request) -> Response:
        body, content_type = await metrics.exposition()
        return Response(body, media_type=content_type)

    return [
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]


def ops_app(metrics: ServiceMetrics, readiness: Readiness) -> Starlette:
    return Starlette(routes=ops_routes(metrics, readiness))
