"""P2P mode (seed 002 3.4.4 "如何开启 P2P 模式"): a room whose two participants send their media straight to
each other. The room manager admits them and passes their signalling (offer, answer, ICE candidates) from
one to the other; no relay serves the room, so SFU publish and subscribe are refused in it.

The rules of engines live here, apart from `Room`, which calls them at its checks. The codes are
seed 002 section 6.3.4's where one names the situation; docs/protocol.md ("P2P mode") lists them.
"""

from __future__ import annotations

from enum import IntEnum

import grpc
from parley.rooms.v1 import rooms_pb2

from services.core.errors import ErrorKind
from services.rooms.errors import ROOM_FULL

_Status = grpc.StatusCode

# A P2P room is one peer connection: two ends.
P2P_PARTICIPANTS = 2


class Engine(IntEnum):
    """Seed 002 config_param `engine` (6.3.2): 0 ALIPAY (default), 1 ALIYUN, 2 P2P."""

    # Media through the platform's relay: the seed's default engine.
    SFU = 0
    # Another vendor's media service: Parley has none to offer.
    ALIYUN = 1
    P2P = 2


class P2PSignalType(IntEnum):
    """rooms.proto P2PSignalType, whose values these are."""

    OFFER = rooms_pb2.P2P_SIGNAL_TYPE_OFFER
    ANSWER = rooms_pb2.P2P_SIGNAL_TYPE_ANSWER
    CANDIDATE = rooms_pb2.P2P_SIGNAL_TYPE_CANDIDATE
    BYE = rooms_pb2.P2P_SIGNAL_TYPE_BYE


# 002 6.3.4 -202 "初始化房间失败: 初始化房间参数非法" (the room's init params are illegal).
ENGINE_UNSUPPORTED = ErrorKind(
    -202, "ENGINE_UNSUPPORTED", _Status.INVALID_ARGUMENT, "engine is 0 (SFU) or 2 (P2P)"
)
# Same code: recording needs the media on the platform, which a P2P room's never is (seed 002 3.4.4
# recommends P2P "如果业务不需要录制").
P2P_NOT_RECORDED = ErrorKind(
    -202, "P2P_NOT_RECORDED", _Status.INVALID_ARGUMENT, "a P2P room cannot be recorded"
)
# 002 6.3.4 -203 "初始化房间失败: 初始化房间错误, P2P 模式下才能开启 Data Channel".
DATA_CHANNEL_NOT_P2P = ErrorKind(
    -203, "DATA_CHANNEL_NOT_P2P", _Status.FAILED_PRECONDITION, "a DataChannel needs a P2P room"
)
# 002 6.3.4 -403 "加入房间失败: 服务器返回错误": every join the server refuses is -403 (ROOM_FULL is the
# other P2P refusal of a join: a third participant).
ENGINE_MISMATCH = ErrorKind(
    -403, "ENGINE_MISMATCH", _Status.FAILED_PRECONDITION, "the room has another engine"
)
# 002 6.3.4 5104 "发布启动失败: 房间状态非法" and -1087 "订阅媒体流失败: 房间状态不正确": publish and
# subscribe go to the relay, which a P2P room has not.
PUBLISH_IN_P2P_ROOM = ErrorKind(
    5104,
    "PUBLISH_IN_P2P_ROOM",
    _Status.FAILED_PRECONDITION,
    "a P2P room has no relay: send media on the peer connection (p2p_signal)",
)
SUBSCRIBE_IN_P2P_ROOM = ErrorKind(
    -1087,
    "SUBSCRIBE_IN_P2P_ROOM",
    _Status.FAILED_PRECONDITION,
    "a P2P room has no relay: receive media on the peer connection (p2p_signal)",
)
# Parley's own (the seed's P2P signalling is inside its SDK, with no codes): -9104x, apart from the
# room manager's -9101x and the calls' -9102x.
NOT_P2P_ROOM = ErrorKind(
    -91040, "NOT_P2P_ROOM", _Status.FAILED_PRECONDITION, "p2p_signal is for a P2P room (engine 2)"
)
P2P_PEER_NOT_IN_ROOM = ErrorKind(
    -91041, "P2P_PEER_NOT_IN_ROOM", _Status.FAILED_PRECONDITION, "`to` is not the other participant"
)


def room_engine(engine: int, *, default_record: bool) -> Engine:
    """The engine of a room being created with these options."""
    if engine not in (Engine.SFU, Engine.P2P):
        raise ENGINE_UNSUPPORTED(f"engine {engine} is not offered; use 0 (SFU) or 2 (P2P)")
    if engine == Engine.P2P and default_record:
        raise P2P_NOT_RECORDED("defaultRecord needs engine 0: a P2P room's media never reaches the platform")
    return Engine(engine)


def check_join(room_engine: Engine, asked: int | None, *, participants: int, rejoining: bool) -> None:
    """A join asking for `asked` (None: whatever the room has), with `participants` in the room already;
    `rejoining` when the joiner's uid is one of them (it takes its own place)."""
    if asked is not None and asked not in (Engine.SFU, Engine.P2P):
        raise ENGINE_UNSUPPORTED(f"engine {asked} is not offered; use 0 (SFU) or 2 (P2P)")
    if asked is not None and asked != room_engine:
        raise ENGINE_MISMATCH(f"the room's engine is {int(room_engine)}, not {asked}")
    if room_engine == Engine.P2P and not rejoining and participants >= P2P_PARTICIPANTS:
        raise ROOM_FULL(f"a P2P room holds {P2P_PARTICIPANTS} participants")


def check_publish(room_engine: Engine, *, data_channel: bool) -> None:
    if room_engine == Engine.P2P:
        raise PUBLISH_IN_P2P_ROOM()
    if data_channel:
        raise DATA_CHANNEL_NOT_P2P(
            "the offer has an m=application line; DataChannels are for P2P rooms (engine 2)"
        )


def check_subscribe(room_engine: Engine) -> None:
    if room_engine == Engine.P2P:
        raise SUBSCRIBE_IN_P2P_ROOM()


def check_signal(room_engine: Engine, sender: str, to: str, participants: set[str]) -> None:
    if room_engine != Engine.P2P:
        raise NOT_P2P_ROOM()
    if to == sender or to not in participants:
        raise P2P_PEER_NOT_IN_ROOM(f"{to} is not the other participant of the room")
