"""What a customer and its devices do with the licence service before they speak protocol v1: an app
created over gRPC, users signed with the app's private key (seed 002 section 4), devices given a licence,
activated and registered for their device secret."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub

from services.licence.keys import load_private_key
from services.licence.signatures import sign

VIDEO = licence_pb2.LicenceType.LICENCE_TYPE_VIDEO_CALL


@dataclass
class App:
    biz_name: str
    app_id: str
    workspace_id: str
    private_key: str

    def sign(self, uid: str, expire_time_ms: int) -> str:
        key = load_private_key(self.private_key)
        return sign(key, self.biz_name, self.app_id, self.workspace_id, uid, expire_time_ms)

    def connect_params(self, uid: str, *, ttl_s: float = 3600) -> dict[str, str]:
        """The `connect` params of user `uid`, signed to expire in `ttl_s`."""
        expire_time_ms = int((time.time() + ttl_s) * 1000)
        return {
            "uid": uid,
            "biz_name": self.biz_name,
            "sub_biz": self.app_id,
            "workspace_id": self.workspace_id,
            "sign": self.sign(uid, expire_time_ms),
        }


async def create_app(licence: LicenceServiceStub, name: str) -> App:
    created = await licence.CreateApp(licence_pb2.CreateAppRequest(name=name), timeout=30)
    return App(created.app.biz_name, created.app.app_id, created.app.workspace_id, created.private_key)


async def register_device(
    licence: LicenceServiceStub,
    app: App,
    *,
    model_id: str = "doorbell",
    licence_type: licence_pb2.LicenceType.ValueType = VIDEO,
) -> tuple[str, str]:
    """A new device of `app`, activated and registered for `licence_type` calls: its sn and device secret."""
    sn = f"prod1_{uuid.uuid4().hex[:12]}"
    await licence.AddLicences(
        licence_pb2.AddLicencesRequest(biz_name=app.biz_name, model_id=model_id, type=licence_type, count=1),
        timeout=10,
    )
    await licence.ActivateDevice(
        licence_pb2.ActivateDeviceRequest(biz_name=app.biz_name, model_id=model_id, sn=sn, type=licence_type),
        timeout=10,
    )
    ticket = await licence.IssueSnTicket(
        licence_pb2.IssueSnTicketRequest(biz_name=app.biz_name, sn=sn), timeout=10
    )
    registration = await licence.RegisterDevice(
        licence_pb2.RegisterDeviceRequest(sn=sn, sn_ticket=ticket.sn_ticket), timeout=10
    )
    return sn, registration.device_secret
