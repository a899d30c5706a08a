"""Parley's Python SDK: the seed's Linux server SDK (rooms: `Engine`, `Session`) and IoT device module
(`Device`) over protocol v1 and aiortc. docs/python-sdk.md."""

from parley_sdk.device import (
    CallMedia,
    Device,
    DeviceListener,
    NotifyEvent,
    SendBufferStatus,
    StreamType,
    UserPage,
    VideoInfo,
)
from parley_sdk.media import AudioData, AudioFormat, VideoCodec, VideoData
from parley_sdk.room import (
    CreateRoomParam,
    EncoderQosParams,
    Engine,
    EngineInitParam,
    EngineListener,
    EngineType,
    EventType,
    JoinRoomParam,
    PublishParam,
    RtcEvent,
    Session,
    SessionListener,
    StreamInfo,
    SubscribeParam,
    TextData,
    UserInfo,
)
from parley_sdk.secret_store import DataFolder, DeviceSecret, UnreadableSecret
from parley_sdk.signalling import ProtocolError, Signalling

# The seed's class names (seed 002 6.4).
MRTCEngine = Engine
MRTCSession = Session
MRtcEngineListener = EngineListener
MRtcSessionListener = SessionListener

__all__ = [
    "AudioData",
    "AudioFormat",
    "CallMedia",
    "CreateRoomParam",
    "DataFolder",
    "Device",
    "DeviceListener",
    "DeviceSecret",
    "EncoderQosParams",
    "Engine",
    "EngineInitParam",
    "EngineListener",
    "EngineType",
    "EventType",
    "JoinRoomParam",
    "MRTCEngine",
    "MRTCSession",
    "MRtcEngineListener",
    "MRtcSessionListener",
    "NotifyEvent",
    "ProtocolError",
    "PublishParam",
    "RtcEvent",
    "SendBufferStatus",
    "Session",
    "SessionListener",
    "Signalling",
    "StreamInfo",
    "StreamType",
    "SubscribeParam",
    "TextData",
    "UnreadableSecret",
    "UserInfo",
    "UserPage",
    "VideoCodec",
    "VideoData",
    "VideoInfo",
]
