import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LicenceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LICENCE_TYPE_UNSPECIFIED: _ClassVar[LicenceType]
    LICENCE_TYPE_AUDIO_CALL: _ClassVar[LicenceType]
    LICENCE_TYPE_VIDEO_CALL: _ClassVar[LicenceType]
LICENCE_TYPE_UNSPECIFIED: LicenceType
LICENCE_TYPE_AUDIO_CALL: LicenceType
LICENCE_TYPE_VIDEO_CALL: LicenceType

class AppSettings(_message.Message):
    __slots__ = ("auto_record", "record_callback_url", "room_status_callback_url", "media_proxy")
    AUTO_RECORD_FIELD_NUMBER: _ClassVar[int]
    RECORD_CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    ROOM_STATUS_CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    MEDIA_PROXY_FIELD_NUMBER: _ClassVar[int]
    auto_record: bool
    record_callback_url: str
    room_status_callback_url: str
    media_proxy: str
    def __init__(self, auto_record: _Optional[bool] = ..., record_callback_url: _Optional[str] = ..., room_status_callback_url: _Optional[str] = ..., media_proxy: _Optional[str] = ...) -> None: ...

class App(_message.Message):
    __slots__ = ("biz_name", "app_id", "workspace_id", "name", "public_key", "settings", "created_at", "updated_at")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    app_id: str
    workspace_id: str
    name: str
    public_key: str
    settings: AppSettings
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, biz_name: _Optional[str] = ..., app_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., name: _Optional[str] = ..., public_key: _Optional[str] = ..., settings: _Optional[_Union[AppSettings, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AppWithKey(_message.Message):
    __slots__ = ("app", "private_key")
    APP_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    app: App
    private_key: str
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ..., private_key: _Optional[str] = ...) -> None: ...

class CreateAppRequest(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: AppSettings
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[AppSettings, _Mapping]] = ...) -> None: ...

class ListAppsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAppsResponse(_message.Message):
    __slots__ = ("apps",)
    APPS_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[App]
    def __init__(self, apps: _Optional[_Iterable[_Union[App, _Mapping]]] = ...) -> None: ...

class GetAppRequest(_message.Message):
    __slots__ = ("biz_name",)
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    def __init__(self, biz_name: _Optional[str] = ...) -> None: ...

class UpdateAppRequest(_message.Message):
    __slots__ = ("biz_name", "name", "settings")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    name: str
    settings: AppSettings
    def __init__(self, biz_name: _Optional[str] = ..., name: _Optional[str] = ..., settings: _Optional[_Union[AppSettings, _Mapping]] = ...) -> None: ...

class DeleteAppResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IssueSignatureRequest(_message.Message):
    __slots__ = ("biz_name", "uid", "ttl")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    uid: str
    ttl: str
    def __init__(self, biz_name: _Optional[str] = ..., uid: _Optional[str] = ..., ttl: _Optional[str] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("signature", "expire_time")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    signature: str
    expire_time: int
    def __init__(self, signature: _Optional[str] = ..., expire_time: _Optional[int] = ...) -> None: ...

class VerifySignatureRequest(_message.Message):
    __slots__ = ("biz_name", "uid", "signature")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    uid: str
    signature: str
    def __init__(self, biz_name: _Optional[str] = ..., uid: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class VerifySignatureResponse(_message.Message):
    __slots__ = ("app_id", "workspace_id", "expire_time")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workspace_id: str
    expire_time: int
    def __init__(self, app_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., expire_time: _Optional[int] = ...) -> None: ...

class AddLicencesRequest(_message.Message):
    __slots__ = ("biz_name", "model_id", "type", "count")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    type: LicenceType
    count: int
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ..., count: _Optional[int] = ...) -> None: ...

class LicencePool(_message.Message):
    __slots__ = ("biz_name", "model_id", "type", "total", "used")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    type: LicenceType
    total: int
    used: int
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ..., total: _Optional[int] = ..., used: _Optional[int] = ...) -> None: ...

class ListLicencePoolsRequest(_message.Message):
    __slots__ = ("biz_name",)
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    def __init__(self, biz_name: _Optional[str] = ...) -> None: ...

class ListLicencePoolsResponse(_message.Message):
    __slots__ = ("pools",)
    POOLS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[LicencePool]
    def __init__(self, pools: _Optional[_Iterable[_Union[LicencePool, _Mapping]]] = ...) -> None: ...

class ActivateDeviceRequest(_message.Message):
    __slots__ = ("biz_name", "model_id", "sn", "type")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    sn: str
    type: LicenceType
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., sn: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ...) -> None: ...

class Activation(_message.Message):
    __slots__ = ("biz_name", "model_id", "sn", "type", "activated_at", "newly_activated")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEWLY_ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    sn: str
    type: LicenceType
    activated_at: _timestamp_pb2.Timestamp
    newly_activated: bool
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., sn: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., newly_activated: _Optional[bool] = ...) -> None: ...

class BatchActivateDevicesRequest(_message.Message):
    __slots__ = ("biz_name", "model_id", "type", "sns")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SNS_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    type: LicenceType
    sns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ..., sns: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchActivationResult(_message.Message):
    __slots__ = ("sn", "code", "msg", "activation")
    SN_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MSG_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    sn: str
    code: int
    msg: str
    activation: Activation
    def __init__(self, sn: _Optional[str] = ..., code: _Optional[int] = ..., msg: _Optional[str] = ..., activation: _Optional[_Union[Activation, _Mapping]] = ...) -> None: ...

class BatchActivateDevicesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchActivationResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchActivationResult, _Mapping]]] = ...) -> None: ...

class DeviceRequest(_message.Message):
    __slots__ = ("sn",)
    SN_FIELD_NUMBER: _ClassVar[int]
    sn: str
    def __init__(self, sn: _Optional[str] = ...) -> None: ...

class IssueSnTicketRequest(_message.Message):
    __slots__ = ("biz_name", "sn")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    sn: str
    def __init__(self, biz_name: _Optional[str] = ..., sn: _Optional[str] = ...) -> None: ...

class SnTicket(_message.Message):
    __slots__ = ("sn_ticket", "expires_at")
    SN_TICKET_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    sn_ticket: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, sn_ticket: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("sn", "sn_ticket")
    SN_FIELD_NUMBER: _ClassVar[int]
    SN_TICKET_FIELD_NUMBER: _ClassVar[int]
    sn: str
    sn_ticket: str
    def __init__(self, sn: _Optional[str] = ..., sn_ticket: _Optional[str] = ...) -> None: ...

class DeviceRegistration(_message.Message):
    __slots__ = ("biz_name", "sn", "device_secret", "registered_at")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECRET_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    sn: str
    device_secret: str
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, biz_name: _Optional[str] = ..., sn: _Optional[str] = ..., device_secret: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IsRegisteredResponse(_message.Message):
    __slots__ = ("registered",)
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    registered: bool
    def __init__(self, registered: _Optional[bool] = ...) -> None: ...

class AuthenticateDeviceRequest(_message.Message):
    __slots__ = ("sn", "device_secret")
    SN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECRET_FIELD_NUMBER: _ClassVar[int]
    sn: str
    device_secret: str
    def __init__(self, sn: _Optional[str] = ..., device_secret: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("biz_name", "model_id", "sn", "type")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    model_id: str
    sn: str
    type: LicenceType
    def __init__(self, biz_name: _Optional[str] = ..., model_id: _Optional[str] = ..., sn: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ...) -> None: ...

class SetAuthorisationRequest(_message.Message):
    __slots__ = ("biz_name", "sn", "open_id", "authorised")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    OPEN_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORISED_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    sn: str
    open_id: str
    authorised: bool
    def __init__(self, biz_name: _Optional[str] = ..., sn: _Optional[str] = ..., open_id: _Optional[str] = ..., authorised: _Optional[bool] = ...) -> None: ...

class Authorisation(_message.Message):
    __slots__ = ("biz_name", "sn", "open_id", "status", "updated_at")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    OPEN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    sn: str
    open_id: str
    status: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, biz_name: _Optional[str] = ..., sn: _Optional[str] = ..., open_id: _Optional[str] = ..., status: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuthorisedUsersRequest(_message.Message):
    __slots__ = ("sn", "offset", "limit")
    SN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    sn: str
    offset: int
    limit: int
    def __init__(self, sn: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAuthorisedUsersResponse(_message.Message):
    __slots__ = ("users", "total")
    USERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[Authorisation]
    total: int
    def __init__(self, users: _Optional[_Iterable[_Union[Authorisation, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ListAuthorisedDevicesRequest(_message.Message):
    __slots__ = ("biz_name", "open_id")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    OPEN_ID_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    open_id: str
    def __init__(self, biz_name: _Optional[str] = ..., open_id: _Optional[str] = ...) -> None: ...

class ListAuthorisedDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Authorisation]
    def __init__(self, devices: _Optional[_Iterable[_Union[Authorisation, _Mapping]]] = ...) -> None: ...

class CheckDeviceCallRequest(_message.Message):
    __slots__ = ("sn", "open_id", "model_id")
    SN_FIELD_NUMBER: _ClassVar[int]
    OPEN_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    sn: str
    open_id: str
    model_id: str
    def __init__(self, sn: _Optional[str] = ..., open_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class CheckDeviceCallResponse(_message.Message):
    __slots__ = ("biz_name", "type")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    type: LicenceType
    def __init__(self, biz_name: _Optional[str] = ..., type: _Optional[_Union[LicenceType, str]] = ...) -> None: ...
