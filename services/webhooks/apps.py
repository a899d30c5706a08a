"""What the dispatcher knows of apps: their seed ids and callback URLs, owned by the licence service.

Asked of the licence service's API (GetApp) and kept for `ttl_s`; the licence facts on parley.licence.v1
(AppCreated, AppChanged carry the whole app) replace an entry as soon as this replica reads them. The
dispatcher never reads the licence service's database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub

from services.core.errors import from_rpc_error
from services.webhooks.bodies import AppIds


@dataclass(frozen=True)
class AppInfo:
    ids: AppIds
    record_callback_url: str
    room_status_callback_url: str

    def url(self, kind: str) -> str:
        return self.record_callback_url if kind == "record" else self.room_status_callback_url

    @classmethod
    def of(cls, app: licence_pb2.App) -> AppInfo:
        return cls(
            AppIds(app.biz_name, app.app_id, app.workspace_id),
            app.settings.record_callback_url,
            app.settings.room_status_callback_url,
        )


class AppDirectory:
    def __init__(self, licence: LicenceServiceStub, *, ttl_s: float, timeout_s: float = 5.0) -> None:
        self._licence = licence
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        # biz_name -> (when fetched, the app or None when the licence service has no such app)
        self._apps: dict[str, tuple[float, AppInfo | None]] = {}

    async def get(self, biz_name: str) -> AppInfo | None:
        """The app, or None when the licence service knows no such app. Raises ParleyError(UNAVAILABLE)
        when the licence service cannot answer: the caller's event is then handled again later."""
        known = self._apps.get(biz_name)
        if known is not None and time.monotonic() - known[0] < self._ttl_s:
            return known[1]
        try:
            app = await self._licence.GetApp(
                licence_pb2.GetAppRequest(biz_name=biz_name), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            # No such app (or a name no app can have): nothing to call back, and asking again will not help.
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                self._apps[biz_name] = (time.monotonic(), None)
                return None
            raise from_rpc_error(error) from None
        info = AppInfo.of(app)
        self._apps[biz_name] = (time.monotonic(), info)
        return info

    def learn(self, app: licence_pb2.App, *, deleted: bool) -> AppInfo | None:
        """A licence fact about `app`: what this replica knows of it is replaced at once."""
        info = None if deleted else AppInfo.of(app)
        self._apps[app.biz_name] = (time.monotonic(), info)
        return info
