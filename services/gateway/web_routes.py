"""What the gateway serves to web pages (docs/web-sdk.md): the Web SDK at /sdk/parley.js (a classic script
defining `MeetingController`; /sdk/parley.mjs is the same as an ES module) and the phone's callee page at
/phone. Customer pages live on their own origins: which of them may load the SDK and open /ws/v1 is the
gateway's `allowed_origins` setting, checked here for both.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

# Inside the package, so an installed gateway serves them; sdk/web/ in the repository links here.
WEB_FILES = Path(__file__).parent / "web"


class OriginPolicy:
    """Which browser origins may use the gateway. `allowed` None: loopback pages only (development and
    tests on one machine); ["*"]: any page."""

    def __init__(self, allowed: list[str] | None) -> None:
        self._allowed = None if allowed is None else {origin.rstrip("/").lower() for origin in allowed}

    def admits(self, origin: str | None, host: str | None) -> bool:
        """`origin` the request's Origin header (None for non-browser clients), `host` its Host header."""
        if origin is None:
            return True
        parts = urlsplit(origin.lower())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if host is not None and parts.netloc == host.lower():
            return True  # the gateway's own pages (/phone)
        if self._allowed is None:
            return _is_loopback_host(parts.hostname)
        return "*" in self._allowed or origin.rstrip("/").lower() in self._allowed


def _is_loopback_host(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def web_router(policy: OriginPolicy) -> APIRouter:
    router = APIRouter()

    def serve(name: str, media_type: str, request: Request) -> Response:
        origin = request.headers.get("origin")
        response = FileResponse(WEB_FILES / name, media_type=media_type)
        # CORS: a page of an allowed origin may load the SDK as a module (`<script type="module">` and
        # `import` fetch in cors mode); a classic <script> sends no Origin and needs no header. Vary on
        # every answer: else a browser reuses a classic load's cached answer, without the header, for
        # a module import of the same file, and refuses it.
        response.headers["Vary"] = "Origin"
        if origin is not None and policy.admits(origin, request.headers.get("host")):
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    @router.get("/sdk/parley.js", include_in_schema=False)
    async def sdk_script(request: Request) -> Response:
        return serve("parley.js", "text/javascript", request)

    @router.get("/sdk/parley.mjs", include_in_schema=False)
    async def sdk_module(request: Request) -> Response:
        return serve("parley.mjs", "text/javascript", request)

    @router.get("/phone", include_in_schema=False)
    async def phone_page(request: Request) -> Response:
        return serve("phone.html", "text/html", request)

    return router
