"""The operator console at /console (docs/console.md): one page and its script, packaged with the gateway,
that manage apps, devices, recordings, usage and webhooks through the operator HTTP API. The page itself
holds nothing secret, so it is served to anyone; every call it makes goes through the API's operator
authentication (the token the operator types in, or loopback when none is set)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

# Inside the package, with the chart library vendored (console/vendor/README.md): no CDN, no build step.
CONSOLE_FILES = Path(__file__).parent / "console"
CONSOLE_ASSETS_PATH = "/console/assets"


def console_router() -> APIRouter:
    router = APIRouter()

    @router.get("/console", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(CONSOLE_FILES / "index.html", media_type="text/html")

    @router.get("/console/", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        return RedirectResponse("/console")

    return router


def console_assets() -> StaticFiles:
    return StaticFiles(directory=CONSOLE_FILES)
