import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateRoomRequest(_message.Message):
    __slots__ = ("biz_name", "creator_uid")
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_UID_FIELD_NUMBER: _ClassVar[int]
    biz_name: str
    creator_uid: str
    def __init__(self, biz_name: _Optional[str] = ..., creator_uid: _Optional[str] = ...) -> None: ...

class CreateRoomResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class GetRoomRequest(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class Room(_message.Message):
    __slots__ = ("room_id", "rtoken", "biz_name", "creator_uid", "created_at")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    RTOKEN_FIELD_NUMBER: _ClassVar[int]
    BIZ_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_UID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    rtoken: str
    biz_name: str
    creator_uid: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., rtoken: _Optional[str] = ..., biz_name: _Optional[str] = ..., creator_uid: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
