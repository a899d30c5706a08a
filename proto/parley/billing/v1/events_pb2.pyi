import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountStatusChanged(_message.Message):
    __slots__ = ("biz_name", "in_arrears", "changed_at")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    IN_ARREARS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    in_arrears: bool
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, biz_name: _Optional[str] = ..., in_arrears: _Optional[bool] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
