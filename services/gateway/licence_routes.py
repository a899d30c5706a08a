"""HTTP routes of the licence service: operators manage apps, licences and authorisations; devices
register themselves with the one-time snTicket they were given (the ticket is their credential)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from google.protobuf.timestamp_pb2 import Timestamp
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from pydantic import Field, SecretStr

from services.gateway.http_api import ApiModel, operator_only

RPC_TIMEOUT_S = 10
LicenceTypeName = Literal["audio", "video"]
_TYPE_NUMBER: dict[LicenceTypeName, licence_pb2.LicenceType.ValueType] = {
    "audio": licence_pb2.LICENCE_TYPE_AUDIO_CALL,
    "video": licence_pb2.LICENCE_TYPE_VIDEO_CALL,
}
_TYPE_NAME: dict[licence_pb2.LicenceType.ValueType, LicenceTypeName] = {
    number: name for name, number in _TYPE_NUMBER.items()
}


def _time(stamp: Timestamp) -> str:
    return stamp.ToJsonString()


class AppSettingsModel(ApiModel):
    auto_record: bool = False
    record_callback_url: str = ""
    room_status_callback_url: str = ""
    media_proxy: str = ""

    @classmethod
    def of(cls, message: licence_pb2.AppSettings) -> AppSettingsModel:
        return cls(
            auto_record=message.auto_record,
            record_callback_url=message.record_callback_url,
            room_status_callback_url=message.room_status_callback_url,
            media_proxy=message.media_proxy,
        )

    def message(self) -> licence_pb2.AppSettings:
        return licence_pb2.AppSettings(**self.model_dump())


class AppOut(ApiModel):
    biz_name: str
    app_id: str
    workspace_id: str
    name: str
    public_key: str
    settings: AppSettingsModel
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, app: licence_pb2.App) -> AppOut:
        return cls(
            biz_name=app.biz_name,
            app_id=app.app_id,
            workspace_id=app.workspace_id,
            name=app.name,
            public_key=app.public_key,
            settings=AppSettingsModel.of(app.settings),
            created_at=_time(app.created_at),
            updated_at=_time(app.updated_at),
        )


class AppWithKeyOut(AppOut):
    # Base64 of the PKCS#8 DER private key: shown once, never stored in the clear.
    private_key: str

    @classmethod
    def with_key(cls, answer: licence_pb2.AppWithKey) -> AppWithKeyOut:
        return cls(**AppOut.of(answer.app).model_dump(), private_key=answer.private_key)


class CreateAppBody(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    settings: AppSettingsModel = Field(default_factory=AppSettingsModel)


class UpdateAppBody(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    settings: AppSettingsModel | None = None


class SignBody(ApiModel):
    uid: str
    ttl: Literal["24h", "3d", "7d"] = "24h"


class SignatureOut(ApiModel):
    signature: str
    expire_time: int


class VerifyBody(ApiModel):
    uid: str
    signature: str


class VerifiedOut(ApiModel):
    valid: bool = True
    app_id: str
    workspace_id: str
    expire_time: int


class AddLicencesBody(ApiModel):
    model_id: str
    type: LicenceTypeName
    count: int = Field(gt=0, le=1_000_000)


class PoolOut(ApiModel):
    biz_name: str
    model_id: str
    type: LicenceTypeName
    total: int
    used: int

    @classmethod
    def of(cls, pool: licence_pb2.LicencePool) -> PoolOut:
        return cls(
            biz_name=pool.biz_name,
            model_id=pool.model_id,
            type=_TYPE_NAME[pool.type],
            total=pool.total,
            used=pool.used,
        )


class ActivateBody(ApiModel):
    model_id: str
    sn: str
    type: LicenceTypeName


class BatchActivateBody(ApiModel):
    model_id: str
    type: LicenceTypeName
    sns: list[str] = Field(min_length=1, max_length=10_000)


class ActivationOut(ApiModel):
    biz_name: str
    model_id: str
    sn: str
    type: LicenceTypeName
    activated_at: str
    newly_activated: bool

    @classmethod
    def of(cls, activation: licence_pb2.Activation) -> ActivationOut:
        return cls(
            biz_name=activation.biz_name,
            model_id=activation.model_id,
            sn=activation.sn,
            type=_TYPE_NAME[activation.type],
            activated_at=_time(activation.activated_at),
            newly_activated=activation.newly_activated,
        )


class BatchResultOut(ApiModel):
    sn: str
    code: int
    msg: str
    activation: ActivationOut | None


class TicketOut(ApiModel):
    sn_ticket: str
    expires_at: str


class RegisterBody(ApiModel):
    sn_ticket: str


class RegistrationOut(ApiModel):
    biz_name: str
    sn: str
    # The device's secret (the seed's "key file"): shown once.
    device_secret: str
    registered_at: str


class RegisteredOut(ApiModel):
    sn: str
    registered: bool


class AuthoriseBody(ApiModel):
    authorised: bool = True


class AuthorisationOut(ApiModel):
    biz_name: str
    sn: str
    open_id: str
    # 1 authorised, 0 revoked (seed 000 onUpdateAuthorizeStatus).
    status: int
    updated_at: str

    @classmethod
    def of(cls, authorisation: licence_pb2.Authorisation) -> AuthorisationOut:
        return cls(
            biz_name=authorisation.biz_name,
            sn=authorisation.sn,
            open_id=authorisation.open_id,
            status=authorisation.status,
            updated_at=_time(authorisation.updated_at),
        )


class AuthorisedUsersOut(ApiModel):
    users: list[AuthorisationOut]
    total: int


def licence_operator_router(licence: LicenceServiceStub) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["licences"])

    @router.post("/apps", status_code=201, summary="Create a call app and its key pair")
    async def create_app(body: CreateAppBody) -> AppWithKeyOut:
        answer = await licence.CreateApp(
            licence_pb2.CreateAppRequest(name=body.name, settings=body.settings.message()),
            timeout=RPC_TIMEOUT_S,
        )
        return AppWithKeyOut.with_key(answer)

    @router.get("/apps", summary="List call apps")
    async def list_apps() -> list[AppOut]:
        answer = await licence.ListApps(licence_pb2.ListAppsRequest(), timeout=RPC_TIMEOUT_S)
        return [AppOut.of(app) for app in answer.apps]

    @router.get("/apps/{biz_name}", summary="Show a call app")
    async def get_app(biz_name: str) -> AppOut:
        return AppOut.of(
            await licence.GetApp(licence_pb2.GetAppRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S)
        )

    @router.patch("/apps/{biz_name}", summary="Rename a call app or change its settings")
    async def update_app(biz_name: str, body: UpdateAppBody) -> AppOut:
        request = licence_pb2.UpdateAppRequest(biz_name=biz_name, name=body.name or "")
        if body.settings is not None:
            request.settings.CopyFrom(body.settings.message())
        return AppOut.of(await licence.UpdateApp(request, timeout=RPC_TIMEOUT_S))

    @router.post("/apps/{biz_name}/rotate-key", summary="Replace the app's key pair")
    async def rotate_key(biz_name: str) -> AppWithKeyOut:
        answer = await licence.RotateAppKey(
            licence_pb2.GetAppRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return AppWithKeyOut.with_key(answer)

    @router.post("/apps/{biz_name}/reveal-key", summary="The app's current private key again (查看密钥)")
    async def reveal_key(biz_name: str) -> AppWithKeyOut:
        answer = await licence.RevealAppKey(
            licence_pb2.GetAppRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return AppWithKeyOut.with_key(answer)

    @router.delete("/apps/{biz_name}", status_code=204, summary="Delete a call app")
    async def delete_app(biz_name: str) -> None:
        await licence.DeleteApp(licence_pb2.GetAppRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S)

    @router.post("/apps/{biz_name}/signatures", summary="Issue a temporary signature (24h, 3d or 7d)")
    async def sign(biz_name: str, body: SignBody) -> SignatureOut:
        answer = await licence.IssueSignature(
            licence_pb2.IssueSignatureRequest(biz_name=biz_name, uid=body.uid, ttl=body.ttl),
            timeout=RPC_TIMEOUT_S,
        )
        return SignatureOut(signature=answer.signature, expire_time=answer.expire_time)

    @router.post("/apps/{biz_name}/signatures/verify", summary="Check a signature; errors say why it fails")
    async def verify(biz_name: str, body: VerifyBody) -> VerifiedOut:
        answer = await licence.VerifySignature(
            licence_pb2.VerifySignatureRequest(biz_name=biz_name, uid=body.uid, signature=body.signature),
            timeout=RPC_TIMEOUT_S,
        )
        return VerifiedOut(
            app_id=answer.app_id, workspace_id=answer.workspace_id, expire_time=answer.expire_time
        )

    @router.post("/apps/{biz_name}/licences", status_code=201, summary="Add licences to a product's pool")
    async def add_licences(biz_name: str, body: AddLicencesBody) -> PoolOut:
        pool = await licence.AddLicences(
            licence_pb2.AddLicencesRequest(
                biz_name=biz_name, model_id=body.model_id, type=_TYPE_NUMBER[body.type], count=body.count
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return PoolOut.of(pool)

    @router.get("/apps/{biz_name}/licences", summary="Licence pools of an app")
    async def list_pools(biz_name: str) -> list[PoolOut]:
        answer = await licence.ListLicencePools(
            licence_pb2.ListLicencePoolsRequest(biz_name=biz_name), timeout=RPC_TIMEOUT_S
        )
        return [PoolOut.of(pool) for pool in answer.pools]

    @router.post("/apps/{biz_name}/devices", summary="Activate a device (idempotent)")
    async def activate(biz_name: str, body: ActivateBody) -> ActivationOut:
        activation = await licence.ActivateDevice(
            licence_pb2.ActivateDeviceRequest(
                biz_name=biz_name, model_id=body.model_id, sn=body.sn, type=_TYPE_NUMBER[body.type]
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return ActivationOut.of(activation)

    @router.post("/apps/{biz_name}/devices/batch", summary="Activate many devices (mass production)")
    async def batch_activate(biz_name: str, body: BatchActivateBody) -> list[BatchResultOut]:
        answer = await licence.BatchActivateDevices(
            licence_pb2.BatchActivateDevicesRequest(
                biz_name=biz_name, model_id=body.model_id, type=_TYPE_NUMBER[body.type], sns=body.sns
            ),
            timeout=RPC_TIMEOUT_S * 6,
        )
        return [
            BatchResultOut(
                sn=result.sn,
                code=result.code,
                msg=result.msg,
                activation=ActivationOut.of(result.activation) if result.HasField("activation") else None,
            )
            for result in answer.results
        ]

    @router.post(
        "/apps/{biz_name}/devices/{sn}/tickets", status_code=201, summary="A one-time snTicket (5 minutes)"
    )
    async def issue_ticket(biz_name: str, sn: str) -> TicketOut:
        ticket = await licence.IssueSnTicket(
            licence_pb2.IssueSnTicketRequest(biz_name=biz_name, sn=sn), timeout=RPC_TIMEOUT_S
        )
        return TicketOut(sn_ticket=ticket.sn_ticket, expires_at=_time(ticket.expires_at))

    @router.put(
        "/apps/{biz_name}/devices/{sn}/users/{open_id}", summary="A user authorises (or revokes) a device"
    )
    async def set_authorisation(
        biz_name: str, sn: str, open_id: str, body: AuthoriseBody
    ) -> AuthorisationOut:
        authorisation = await licence.SetAuthorisation(
            licence_pb2.SetAuthorisationRequest(
                biz_name=biz_name, sn=sn, open_id=open_id, authorised=body.authorised
            ),
            timeout=RPC_TIMEOUT_S,
        )
        return AuthorisationOut.of(authorisation)

    @router.get("/apps/{biz_name}/users/{open_id}/devices", summary="Devices a user has authorised")
    async def authorised_devices(biz_name: str, open_id: str) -> list[AuthorisationOut]:
        answer = await licence.ListAuthorisedDevices(
            licence_pb2.ListAuthorisedDevicesRequest(biz_name=biz_name, open_id=open_id),
            timeout=RPC_TIMEOUT_S,
        )
        return [AuthorisationOut.of(device) for device in answer.devices]

    @router.get("/devices/{sn}/activation", summary="Activation info of a device")
    async def activation(sn: str) -> ActivationOut:
        return ActivationOut.of(
            await licence.GetActivation(licence_pb2.DeviceRequest(sn=sn), timeout=RPC_TIMEOUT_S)
        )

    @router.get("/devices/{sn}/registration", summary="Whether a device is registered")
    async def is_registered(sn: str) -> RegisteredOut:
        answer = await licence.IsRegistered(licence_pb2.DeviceRequest(sn=sn), timeout=RPC_TIMEOUT_S)
        return RegisteredOut(sn=sn, registered=answer.registered)

    return router


def licence_device_router(licence: LicenceServiceStub, operator_token: SecretStr | None) -> APIRouter:
    """Routes a device calls itself: registration (the snTicket is the credential) and its users
    (`Authorization: Device <device secret>`; operators may read them too)."""
    router = APIRouter(prefix="/v1/devices", tags=["devices"])
    require_operator = operator_only(operator_token).dependency

    async def device_or_operator(sn: str, request: Request) -> None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "device":
            await licence.AuthenticateDevice(
                licence_pb2.AuthenticateDeviceRequest(sn=sn, device_secret=secret), timeout=RPC_TIMEOUT_S
            )
        else:
            require_operator(request)

    @router.post("/{sn}/registration", status_code=201, summary="Register with a one-time snTicket")
    async def register(sn: str, body: RegisterBody) -> RegistrationOut:
        registration = await licence.RegisterDevice(
            licence_pb2.RegisterDeviceRequest(sn=sn, sn_ticket=body.sn_ticket), timeout=RPC_TIMEOUT_S
        )
        return RegistrationOut(
            biz_name=registration.biz_name,
            sn=registration.sn,
            device_secret=registration.device_secret,
            registered_at=_time(registration.registered_at),
        )

    @router.get(
        "/{sn}/users",
        dependencies=[Depends(device_or_operator)],
        summary="Users who authorised the device, at most 10 a page",
    )
    async def authorised_users(
        sn: str, offset: int = Query(0, ge=0), limit: int = Query(10, ge=1, le=10)
    ) -> AuthorisedUsersOut:
        answer = await licence.ListAuthorisedUsers(
            licence_pb2.ListAuthorisedUsersRequest(sn=sn, offset=offset, limit=limit), timeout=RPC_TIMEOUT_S
        )
        return AuthorisedUsersOut(
            users=[AuthorisationOut.of(user) for user in answer.users], total=answer.total
        )

    return router
