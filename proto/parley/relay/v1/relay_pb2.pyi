from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class NegotiateRequest(_message.Message):
    __slots__ = ("room_id", "uid", "feed_id", "sdp_offer")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    SDP_OFFER_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    uid: str
    feed_id: str
    sdp_offer: str
    def __init__(self, room_id: _Optional[str] = ..., uid: _Optional[str] = ..., feed_id: _Optional[str] = ..., sdp_offer: _Optional[str] = ...) -> None: ...

class NegotiateResponse(_message.Message):
    __slots__ = ("sdp_answer",)
    SDP_ANSWER_FIELD_NUMBER: _ClassVar[int]
    sdp_answer: str
    def __init__(self, sdp_answer: _Optional[str] = ...) -> None: ...
