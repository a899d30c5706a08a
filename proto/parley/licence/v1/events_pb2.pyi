import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parley.licence.v1 import licence_pb2 as _licence_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppCreated(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: _licence_pb2.App
    def __init__(self, app: _Optional[_Union[_licence_pb2.App, _Mapping]] = ...) -> None: ...

class AppChanged(_message.Message):
    __slots__ = ("app", "key_rotated", "deleted")
    APP_FIELD_NUMBER: _ClassVar[int]
    KEY_ROTATED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    app: _licence_pb2.App
    key_rotated: bool
    deleted: bool
    def __init__(self, app: _Optional[_Union[_licence_pb2.App, _Mapping]] = ..., key_rotated: _Optional[bool] = ..., deleted: _Optional[bool] = ...) -> None: ...

class DeviceActivated(_message.Message):
    __slots__ = ("activation",)
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    activation: _licence_pb2.Activation
    def __init__(self, activation: _Optional[_Union[_licence_pb2.Activation, _Mapping]] = ...) -> None: ...

class DeviceRegistered(_message.Message):
    __slots__ = ("biz_name", "sn", "registered_at", "replaced")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    sn: str
    registered_at: _timestamp_pb2.Timestamp
    replaced: bool
    def __init__(self, biz_name: _Optional[str] = ..., sn: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replaced: _Optional[bool] = ...) -> None: ...

class AuthorisationChanged(_message.Message):
    __slots__ = ("authorisation",)
    AUTHORISATION_FIELD_NUMBER: _ClassVar[int]
    authorisation: _licence_pb2.Authorisation
    def __init__(self, authorisation: _Optional[_Union[_licence_pb2.Authorisation, _Mapping]] = ...) -> None: ...
