"""Two room managers on one Redis store, as processes, on a broker of their own: the first leads, the other
stands by without serving; two gateways reach whichever room manager serves (a gRPC target listing both).
A device on one
gateway calls a user on the other, both join the call's room, and the room manager they were served by is
killed with SIGKILL mid-call. The other takes the room and the call over within seconds; the gateways bring
the sessions back to it; the two sides go on talking in the room; nobody is left in it who is not there (no
ghost participant once the session grace is over); and the call's time limit, armed by the dead room
manager, still ends the call on the other, told to both sides, each fact of the call published once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.integration.licence_helpers import create_app
from tests.integration.protocol_client import Client, Connections
from tests.integration.rooms.test_rooms_survive_restart import on_redis, until_found
from tests.redis_keys import fresh_prefix
from tests.testing import Instance, start_platform

ROOM_LEASE_S = 1.0
SESSION_GRACE_S = 3.0
# Gateways heartbeat every third of it: a gateway that moved to the other room manager reports its
# connections there within a second.
GATEWAY_LEASE_S = 3.0
# Long enough for the takeover and the grace to be over first on a loaded machine.
TIME_LIMIT_S = 25
CALL_FACTS = (events_pb2.CallStarted, events_pb2.CallAnswered, events_pb2.CallEnded)
ROOM_FACTS = (
    events_pb2.RoomCreated,
    events_pb2.ParticipantJoined,
    events_pb2.ParticipantLeft,
    events_pb2.RoomDestroyed,
)


async def test_a_call_goes_on_when_its_room_manager_is_killed(tmp_path: Path) -> None:
    async with fresh_prefix() as (_, prefix):
        settings = on_redis(
            prefix,
            room_lease_s=ROOM_LEASE_S,
            session_grace_s=SESSION_GRACE_S,
            gateway_lease_s=GATEWAY_LEASE_S,
        )
        async with start_platform(
            tmp_path,
            ServiceName.LICENCE,
            Instance(ServiceName.ROOMS, process=True),
            settings=settings,
        ) as platform:
            # Started once the first leads, so that it stands by.
            await platform.start(Instance(ServiceName.ROOMS, process=True, standby=True))
            either = f"ipv4:{platform['rooms'].grpc_address},{platform['rooms-2'].grpc_address}"
            reaching_either = {"grpc": {"rooms": either}}
            first, second = await platform.start(
                Instance(ServiceName.GATEWAY, settings=reaching_either),
                Instance(ServiceName.GATEWAY, settings=reaching_either),
            )
            facts = await platform.record([Topic.ROOM, Topic.CALL], [*ROOM_FACTS, *CALL_FACTS])
            app = await create_app(platform.licence, "replicas")
            connections = Connections(app)
            try:
                phone = await connections.open(second.ws_url)
                bell = await connections.open_device(
                    first.ws_url, platform.licence, authorised_user=phone.uid
                )
                call_id = (
                    await bell.ok("call", open_id=phone.uid, media="audio", time_limit_s=TIME_LIMIT_S)
                )["call_id"]
                await phone.event("on_call_incoming")
                answered = await phone.ok("answer_call", call_id=call_id)
                answered_at = time.monotonic()
                await bell.event("on_call_answered")
                room_id = answered["room_id"]
                await bell.ok("join_room", room_id=room_id, rtoken=answered["rtoken"])
                await phone.ok("join_room", room_id=room_id, rtoken=answered["rtoken"])
                await bell.event("on_new_joiner_in")
                # The leader serves both gateways: it made and owns the room and the call.
                owner = platform.stub(RoomServiceStub, "rooms")
                assert (await owner.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=5)).room_id
                killed_at = time.monotonic()

                await platform.kill("rooms")
                await platform.until_serving("rooms-2")
                other = platform.stub(RoomServiceStub, "rooms-2")
                taken = await until_found(other, room_id, within_s=ROOM_LEASE_S * 10)
                assert taken.rtoken == answered["rtoken"]
                taken_over_s = time.monotonic() - killed_at

                # The call goes on: each side reaches the other in the room, through the other room manager.
                await until_heard(phone, bell, "still there?")
                await until_heard(bell, phone, "yes")
                print(f"room and call taken over {taken_over_s:.1f} s after the kill")
                # Past the session grace nobody has left and nobody else is in the room: no ghost.
                await asyncio.sleep(SESSION_GRACE_S + 1)
                assert time.monotonic() - answered_at < TIME_LIMIT_S, "the takeover took the whole call"
                room = await other.GetRoom(rooms_pb2.GetRoomRequest(room_id=room_id), timeout=5)
                assert sorted(p.uid for p in room.participants) == sorted([bell.uid, phone.uid])
                assert facts.types(room_id).count("ParticipantLeft") == 0

                # The time limit the dead room manager armed ends the call on the other.
                ended = await phone.event("on_call_end", timeout_s=TIME_LIMIT_S + 10)
                assert (ended["call_id"], ended["reason"]) == (call_id, "time_limit")
                assert ended["keep_time_ms"] >= TIME_LIMIT_S * 1000
                assert (await bell.event("on_call_end"))["reason"] == "time_limit"
                await facts.wait_for(call_id, "CallEnded")
                await facts.wait_for(room_id, "RoomDestroyed")
                await asyncio.sleep(ROOM_LEASE_S)
                assert facts.types(call_id) == ["CallStarted", "CallAnswered", "CallEnded"]
                assert facts.types(room_id).count("RoomDestroyed") == 1
                assert (await bell.ok("is_busy"))["busy"] == 0
            finally:
                await connections.close()


async def until_heard(sender: Client, receiver: Client, text: str) -> None:
    """`sender` says `text` in its room until the send succeeds (its gateway may still be moving to the
    other room manager), and `receiver` hears it."""
    async with asyncio.timeout(30):
        while True:
            answer: dict[str, Any] = await sender.call("send_text", text=text)
            if answer.get("code", 0) == 0:
                break
            await asyncio.sleep(0.2)
    assert (await receiver.event("on_receive_text_msg", timeout_s=10))["text"] == text
