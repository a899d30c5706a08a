from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetRecordInfoRequest(_message.Message):
    __slots__ = ("record_id",)
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    def __init__(self, record_id: _Optional[str] = ...) -> None: ...

class RecordInfo(_message.Message):
    __slots__ = ("record_id", "room_id", "event_code")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_CODE_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    room_id: str
    event_code: int
    def __init__(self, record_id: _Optional[str] = ..., room_id: _Optional[str] = ..., event_code: _Optional[int] = ...) -> None: ...
