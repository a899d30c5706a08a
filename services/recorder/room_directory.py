"""What the recorder needs of the room manager: a room's app, participants, relay and feeds (RoomView),
behind a narrow protocol (rooms.py implements it over gRPC), and the checks a request makes with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.core.errors import ErrorKind, ParleyError
from services.core.shared_errors import START_FAILED
from services.recorder.capture import FeedSource
from services.recorder.errors import RECORD_NOT_IN_ROOM, RECORD_ROOM_NOT_FOUND


@dataclass(frozen=True)
class RoomView:
    """What the recorder needs of a room, from the room manager's GetRoom."""

    room_id: str
    biz_name: str
    relay_address: str
    participants: frozenset[str]
    feeds: tuple[FeedSource, ...]


class RoomDirectory(Protocol):
    async def get(self, room_id: str) -> RoomView | None:
        """The live room, None when there is none; raises ParleyError when the room manager fails."""
        ...


async def room_to_record(rooms: RoomDirectory, room_id: str, biz_name: str, uid: str) -> RoomView:
    """The room a StartRecording names, when it is live, of the caller's app (`biz_name`, if given) and
    with `uid` (if given) in it."""
    try:
        room = await rooms.get(room_id)
    except ParleyError as error:
        raise START_FAILED(f"the room manager did not answer: {error.message}") from None
    if room is None or (biz_name and room.biz_name != biz_name):
        raise RECORD_ROOM_NOT_FOUND(f"room {room_id} does not exist")
    if uid and uid not in room.participants:
        raise RECORD_NOT_IN_ROOM(f"{uid} is not in room {room_id}")
    return room


async def check_participant(rooms: RoomDirectory, room_id: str, uid: str, not_in_room: ErrorKind) -> None:
    """`not_in_room` unless `uid` is in the room; a request without a uid is not checked."""
    if not uid:
        return
    room = await rooms.get(room_id)
    if room is None or uid not in room.participants:
        raise not_in_room(f"{uid} is not in room {room_id}")
