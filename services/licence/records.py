"""The licence service's records and facts: plain values that the rules (apps.py, devices.py,
authorisations.py) pass to and get from a `LicenceStore`, and that messages.py turns into protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

# The longest app name, callback URL and media proxy host an app may have (the columns of tables.apps).
NAME = 128
URL = 2048
HOST = 255

# Seed 000 onUpdateAuthorizeStatus: 1 authorised, 0 not (revoked or refused).
AUTHORISED = 1
NOT_AUTHORISED = 0


class LicenceType(IntEnum):
    """Seed 000 `voip_activate_type_e`; the numbers are the proto's `LicenceType`."""

    AUDIO_CALL = 1
    VIDEO_CALL = 2


@dataclass(frozen=True)
class AppSettings:
    """What 002 section 5.1.2 lets the console configure per app."""

    auto_record: bool = False
    record_callback_url: str = ""
    room_status_callback_url: str = ""
    media_proxy: str = ""


@dataclass(frozen=True)
class AppRecord:
    biz_name: str
    app_id: str
    workspace_id: str
    name: str
    # Base64 of SubjectPublicKeyInfo DER.
    public_key: str
    settings: AppSettings
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VerifiedSignature:
    app_id: str
    workspace_id: str
    expire_time_ms: int


@dataclass(frozen=True)
class PoolRecord:
    biz_name: str
    model_id: str
    licence_type: LicenceType
    total: int
    used: int


@dataclass(frozen=True)
class ActivationRecord:
    biz_name: str
    model_id: str
    sn: str
    licence_type: LicenceType
    activated_at: datetime
    # False when the device was already activated: activation is idempotent and consumed nothing.
    # A store hands back what it keeps with False: being new is an outcome of one request.
    newly_activated: bool


@dataclass(frozen=True)
class BatchActivationResult:
    sn: str
    activation: ActivationRecord | None
    # 0 when the device is activated (now or before); otherwise the error's code and message.
    code: int
    msg: str


@dataclass(frozen=True)
class SnTicketRecord:
    # Handed out once; only its hash is stored.
    token: str
    sn: str
    expires_at: datetime


@dataclass(frozen=True)
class RegistrationRecord:
    biz_name: str
    sn: str
    # Handed to the device once (the seed's "key file"); only its hash is stored.
    device_secret: str
    registered_at: datetime
    # True when this registration replaced an earlier one (factory reset).
    replaced: bool


@dataclass(frozen=True)
class DeviceRecord:
    biz_name: str
    model_id: str
    sn: str
    licence_type: LicenceType


@dataclass(frozen=True)
class AuthorisationRecord:
    biz_name: str
    sn: str
    open_id: str
    # AUTHORISED or NOT_AUTHORISED (revoked or refused; seed 000 onUpdateAuthorizeStatus).
    status: int
    updated_at: datetime


# The facts others may hear of (`parley.licence.v1`, services/licence/facts.py), each staged by the rules in
# the store's unit of work that makes it true. Named after the events they become.


@dataclass(frozen=True)
class AppCreated:
    app: AppRecord


@dataclass(frozen=True)
class AppChanged:
    app: AppRecord
    key_rotated: bool = False
    deleted: bool = False


@dataclass(frozen=True)
class DeviceActivated:
    activation: ActivationRecord


@dataclass(frozen=True)
class DeviceRegistered:
    registration: RegistrationRecord


@dataclass(frozen=True)
class AuthorisationChanged:
    authorisation: AuthorisationRecord


Fact = AppCreated | AppChanged | DeviceActivated | DeviceRegistered | AuthorisationChanged
