"""The room manager's unit tests run on each room store: the in-process one, and one that copies records
in and out as a replicated store would (tests/unit/rooms/test_room_manager.py, CopyingRoomStore)."""

from __future__ import annotations

import pytest

from services.rooms.store import InProcessRoomStore
from tests.unit.rooms.test_room_manager import CopyingRoomStore, World


@pytest.fixture(params=[InProcessRoomStore, CopyingRoomStore], ids=["in_process", "copying"])
def world(request: pytest.FixtureRequest) -> World:
    return World(request.param())
