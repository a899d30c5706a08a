from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("app_id", "workspace_id", "expire_time_ms")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    workspace_id: str
    expire_time_ms: int
    def __init__(self, app_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., expire_time_ms: _Optional[int] = ...) -> None: ...
