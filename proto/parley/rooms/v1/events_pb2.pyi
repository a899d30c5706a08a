import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoomCreated(_message.Message):
    __slots__ = ("room_id", "biz_name", "creator_uid", "created_at")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_UID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    biz_name: str
    creator_uid: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., biz_name: _Optional[str] = ..., creator_uid: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RoomDestroyed(_message.Message):
    __slots__ = ("room_id", "biz_name", "destroyed_at")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_AT_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    biz_name: str
    destroyed_at: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., biz_name: _Optional[str] = ..., destroyed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
