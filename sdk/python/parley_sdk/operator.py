"""What an app's backend does on the platform's HTTP API (docs/licence.md), for examples, tests and
`parley demo`: create an app, add device licences, issue snTickets, authorise devices for users and sign
users in. Operator routes answer loopback clients, or any client with the operator token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from parley_sdk.signalling import ProtocolError


@dataclass(frozen=True)
class App:
    biz_name: str
    app_id: str
    workspace_id: str


@dataclass(frozen=True)
class UserCredentials:
    """What a user's `connect` needs (protocol v1): the app's backend signs the uid."""

    uid: str
    sign: str
    biz_name: str
    sub_biz: str
    workspace_id: str


class Operator:
    def __init__(self, gateway_url: str = "http://127.0.0.1:8080", token: str | None = None) -> None:
        self.url = gateway_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"} if token else {}

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws/v1"

    async def request(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """The decoded answer; an error answer raises ProtocolError with its code and reason."""
        async with httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=30) as client:
            response = await client.request(method, path, json=body, **options)
        if response.status_code >= 400:
            try:
                answer = response.json()
                code, reason, msg = int(answer["code"]), str(answer.get("reason", "")), str(answer["msg"])
            except (ValueError, KeyError, TypeError):
                code, reason, msg = response.status_code, "HTTP", response.text
            raise ProtocolError(f"{method} {path}", code, reason, msg)
        return response.json() if response.content else None

    async def create_app(self, name: str, settings: dict[str, Any] | None = None) -> App:
        answer = await self.request("POST", "/v1/apps", {"name": name, "settings": settings or {}})
        return App(answer["bizName"], answer["appId"], answer["workspaceId"])

    async def add_licences(self, app: App, model_id: str, kind: str, count: int) -> None:
        body = {"modelId": model_id, "type": kind, "count": count}
        await self.request("POST", f"/v1/apps/{app.biz_name}/licences", body)

    async def issue_ticket(self, app: App, sn: str) -> str:
        """A one-time snTicket for an activated device (valid 5 minutes)."""
        return str((await self.request("POST", f"/v1/apps/{app.biz_name}/devices/{sn}/tickets"))["snTicket"])

    async def authorise(self, app: App, sn: str, open_id: str, authorised: bool = True) -> None:
        path = f"/v1/apps/{app.biz_name}/devices/{sn}/users/{open_id}"
        await self.request("PUT", path, {"authorised": authorised})

    async def sign_in(self, app: App, uid: str) -> UserCredentials:
        """A temporary signature (24 h) for `uid`: what the app's backend gives its client."""
        answer = await self.request("POST", f"/v1/apps/{app.biz_name}/signatures", {"uid": uid})
        return UserCredentials(uid, answer["signature"], app.biz_name, app.app_id, app.workspace_id)
