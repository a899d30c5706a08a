"""What the room manager takes from its requests beyond their plain fields: the tracks a relay negotiated,
a P2P signal (checked), and a device's call order."""

from __future__ import annotations

from collections.abc import Iterable

from parley.relay.v1 import media_pb2
from parley.rooms.v1 import rooms_pb2

from services.core.errors import INVALID_ARGUMENT
from services.core.media.kinds import KIND_NAMES
from services.rooms.calls import CallMedia, CallOrder
from services.rooms.p2p import P2PSignalType


def tracks(messages: Iterable[media_pb2.Track]) -> tuple[media_pb2.Track, ...]:
    """The tracks of kinds the room manager knows (audio, video)."""
    return tuple(track for track in messages if track.kind in KIND_NAMES)


def p2p_signal(message: rooms_pb2.P2PSignal) -> rooms_pb2.P2PSignal:
    """The signal of a request; its type must be one of P2PSignalType's (INVALID_ARGUMENT otherwise)."""
    if message.type not in tuple(P2PSignalType):
        raise INVALID_ARGUMENT("signal.type is 1 (offer), 2 (answer), 3 (candidate) or 4 (bye)")
    return message


def call_order(request: rooms_pb2.StartCallRequest) -> CallOrder:
    """What the caller asked for; `media` is one of CallMedia's (the handler checked)."""
    return CallOrder(
        open_id=request.open_id,
        media=CallMedia(request.media),
        video=request.video if request.HasField("video") else None,
        caller_camera_on=request.caller_camera_on,
        callee_camera_on=request.callee_camera_on,
        time_limit_s=request.time_limit_s,
        sn=request.sn,
    )
