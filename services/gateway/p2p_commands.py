"""`p2p_signal`, the command of P2P mode (docs/protocol.md, "P2P mode"): one participant of a P2P room sends
the other its offer, answer, trickled ICE candidates or bye; the room manager checks that both are in the
same P2P room and pushes it, as `on_p2p_signal`, to the other's session on whichever gateway holds it.

The gateway checks the shape of a signal and nothing of the SDP beyond its first line: the peers negotiate
with each other, and what their SDP says is theirs to agree on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from parley.rooms.v1 import delivery_pb2, rooms_pb2
from parley.rooms.v1.room_sessions_pb2_grpc import RoomSessionServiceStub
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.gateway.commands import Command
from services.gateway.protocol import Uid, parse_params
from services.gateway.room_commands import ask_rooms
from services.gateway.room_sessions import RoomSessions
from services.gateway.sessions import Session

SIGNAL_TYPES: dict[str, rooms_pb2.P2PSignalType.ValueType] = {
    "offer": rooms_pb2.P2P_SIGNAL_TYPE_OFFER,
    "answer": rooms_pb2.P2P_SIGNAL_TYPE_ANSWER,
    "candidate": rooms_pb2.P2P_SIGNAL_TYPE_CANDIDATE,
    "bye": rooms_pb2.P2P_SIGNAL_TYPE_BYE,
}
# The room manager sends a gateway up to 256 pushes in one gRPC call (services/rooms/delivery.py), which
# must stay under gRPC's 4 MB message limit; at 12 KiB a signal leaves room for that. Browsers' offers
# are a few KiB, more with many candidates inline (trickling them keeps the SDP small).
SDP_MAX_BYTES = 12 * 1024

SIGNAL_NAMES: dict[int, str] = {value: name for name, value in SIGNAL_TYPES.items()}


class P2PSignalParams(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    to: Uid
    type: Literal["offer", "answer", "candidate", "bye"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=SDP_MAX_BYTES)] | None = None
    # RTCIceCandidate.candidate ("candidate:..."); "" says the sender has gathered all its candidates.
    candidate: Annotated[str, StringConstraints(max_length=1024)] | None = None
    sdp_mid: Annotated[str, StringConstraints(max_length=64)] | None = None
    # An SDP has a handful of m-lines; the bound keeps the index a small number.
    sdp_mline_index: Annotated[int, Field(ge=0, le=1023)] | None = None

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> P2PSignalParams:
        if self.type in ("offer", "answer"):
            if self.sdp is None or not self.sdp.startswith("v=0"):
                raise ValueError(f"an {self.type} carries an sdp that starts with v=0")
            if len(self.sdp.encode()) > SDP_MAX_BYTES:
                raise ValueError(f"sdp: at most {SDP_MAX_BYTES} bytes (UTF-8); trickle the candidates")
        elif self.type == "candidate":
            if self.candidate is None:
                raise ValueError('a candidate carries `candidate` ("" when there are no more)')
            if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
                raise ValueError("a candidate names its media: sdp_mid or sdp_mline_index")
        return self


class P2PCommands:
    def __init__(
        self, rooms: RoomSessionServiceStub, room_sessions: RoomSessions, *, timeout_s: float
    ) -> None:
        self._rooms = rooms
        self._room_sessions = room_sessions
        self._timeout_s = timeout_s

    def commands(self) -> dict[str, Command]:
        return {"p2p_signal": Command(self._p2p_signal)}

    async def _p2p_signal(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        signal = parse_params(P2PSignalParams, params)
        request = rooms_pb2.SendP2PSignalRequest(
            session_id=session.id,
            to=signal.to,
            signal=rooms_pb2.P2PSignal(
                type=SIGNAL_TYPES[signal.type],
                sdp=signal.sdp or "",
                candidate=signal.candidate or "",
                sdp_mid=signal.sdp_mid or "",
                sdp_mline_index=signal.sdp_mline_index,
            ),
        )
        await ask_rooms(
            self._room_sessions, session, lambda: self._rooms.SendP2PSignal(request, timeout=self._timeout_s)
        )
        return {}


def signal_event_data(received: delivery_pb2.P2PSignalReceived) -> dict[str, Any]:
    """The data of `on_p2p_signal` for a P2PSignalReceived push (delivery.proto): the fields of its type."""
    signal = received.signal
    name = SIGNAL_NAMES.get(signal.type, "")
    data: dict[str, Any] = {"room_id": received.room_id, "from": received.sender, "type": name}
    if name in ("offer", "answer"):
        data["sdp"] = signal.sdp
    elif name == "candidate":
        data["candidate"] = signal.candidate
        data["sdp_mid"] = signal.sdp_mid or None
        data["sdp_mline_index"] = signal.sdp_mline_index if signal.HasField("sdp_mline_index") else None
    return data
