"""Two relays, each its own ServiceRuntime on its own port, register with an in-process room manager and
report their load; rooms go to the less-loaded one and stay there, and a draining relay gets no new rooms,
keeps its streams and finishes draining once they have ended."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from parley.relay.v1 import relay_pb2, relay_pb2_grpc
from parley.rooms.v1 import room_sessions_pb2_grpc, rooms_pb2, rooms_pb2_grpc
from relay_clients import Publisher, publish, wait_until

from services.core.config import ServiceName
from services.core.embedded_broker import free_port
from services.rooms.manager import RoomManager
from tests.testing import Instance, Platform, start_platform

# Reports every second: the tests see loads change without waiting long.
RELAY_LEASE_S = 3.0


@dataclass
class ManyRelays:
    manager: RoomManager
    rooms: rooms_pb2_grpc.RoomServiceStub
    sessions: room_sessions_pb2_grpc.RoomSessionServiceStub
    running: Platform
    # Relay id -> its gRPC address and a client of it.
    addresses: dict[str, str]
    stubs: dict[str, relay_pb2_grpc.RelayServiceStub]
    fallback: str


def relay(relay_id: str) -> Instance:
    """A relay on a port of its own: the address the room manager is configured with stays a fallback
    nobody listens on."""
    return Instance(
        ServiceName.RELAY,
        key=relay_id,
        settings={"grpc": {"relay": f"127.0.0.1:{free_port()}"}, "relay": {"relay_id": relay_id}},
    )


@pytest.fixture(scope="module")
async def many_relays(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ManyRelays]:
    relay_ids = ("relay-a", "relay-b")
    async with start_platform(
        tmp_path_factory.mktemp("many-relays"),
        ServiceName.ROOMS,
        *(relay(relay_id) for relay_id in relay_ids),
        settings={"rooms": {"relay_lease_s": RELAY_LEASE_S}},
    ) as platform:
        yield ManyRelays(
            manager=platform["rooms"].built,
            rooms=platform.stub(rooms_pb2_grpc.RoomServiceStub, ServiceName.ROOMS),
            sessions=platform.stub(room_sessions_pb2_grpc.RoomSessionServiceStub, ServiceName.ROOMS),
            running=platform,
            addresses={relay_id: platform[relay_id].grpc_address for relay_id in relay_ids},
            stubs={
                relay_id: platform.stub(relay_pb2_grpc.RelayServiceStub, relay_id) for relay_id in relay_ids
            },
            fallback=platform.endpoints.relay,
        )


async def new_room_relay(platform: ManyRelays) -> tuple[str, str]:
    """A new room with one participant who starts to publish: the session, and the relay named for it."""
    session_id = uuid.uuid4().hex
    await platform.sessions.OpenSession(
        rooms_pb2.OpenSessionRequest(
            session_id=session_id,
            biz_name="many-relays",
            uid=f"u{session_id[:8]}",
            attachment=rooms_pb2.Attachment(
                gateway_id="gw", gateway_address=f"127.0.0.1:{free_port()}", connection_id=session_id
            ),
        )
    )
    await platform.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(session_id=session_id))
    return session_id, await relay_of(platform, session_id)


async def relay_of(platform: ManyRelays, session_id: str) -> str:
    slot = await platform.sessions.StartPublish(
        rooms_pb2.StartPublishRequest(session_id=session_id, media_type=1)
    )
    await platform.sessions.CancelPublish(
        rooms_pb2.CancelPublishRequest(session_id=session_id, feed_id=slot.feed_id)
    )
    address: str = slot.relay.address
    return address


async def load_shown(
    platform: ManyRelays, relay_id: str, *, publications: int, draining: bool = False
) -> None:
    def shown() -> bool:
        relay = platform.manager.relays.live().get(relay_id)
        return (
            relay is not None and relay.load.publications == publications and relay.load.draining is draining
        )

    await wait_until(shown, timeout_s=10)


async def test_rooms_go_to_the_less_loaded_relay_and_stay_there(many_relays: ManyRelays) -> None:
    platform = many_relays
    await wait_until(lambda: set(platform.manager.relays.live()) == {"relay-a", "relay-b"}, timeout_s=10)
    publisher, second, third = (Publisher(audio=None) for _ in range(3))
    await publish(platform.stubs["relay-a"], publisher, room_id="busy", feed_id="f1")
    try:
        await load_shown(platform, "relay-a", publications=1)
        session_id, first = await new_room_relay(platform)
        assert first == platform.addresses["relay-b"]
        assert first != platform.fallback

        # relay-b now carries more than relay-a: a second publish in the room still goes to relay-b.
        await publish(platform.stubs["relay-b"], second, room_id="b1", feed_id="f1")
        await publish(platform.stubs["relay-b"], third, room_id="b2", feed_id="f1")
        await load_shown(platform, "relay-b", publications=2)
        assert await relay_of(platform, session_id) == platform.addresses["relay-b"]
        _, other = await new_room_relay(platform)
        assert other == platform.addresses["relay-a"]
    finally:
        for room_id, relay_id in (("busy", "relay-a"), ("b1", "relay-b"), ("b2", "relay-b")):
            await platform.stubs[relay_id].Unpublish(
                relay_pb2.UnpublishRequest(room_id=room_id, feed_id="f1")
            )
        for client in (publisher, second, third):
            await client.close()


async def test_a_draining_relay_gets_no_new_rooms_and_finishes_when_its_streams_end(
    many_relays: ManyRelays,
) -> None:
    platform = many_relays
    await wait_until(lambda: set(platform.manager.relays.live()) == {"relay-a", "relay-b"}, timeout_s=10)
    await load_shown(platform, "relay-a", publications=0)
    await load_shown(platform, "relay-b", publications=0)
    placed_on_b = None
    while placed_on_b is None:
        session_id, address = await new_room_relay(platform)
        if address == platform.addresses["relay-b"]:
            placed_on_b = session_id

    publisher = Publisher(audio=None)
    await publish(platform.stubs["relay-b"], publisher, room_id="staying", feed_id="f1")
    draining = asyncio.create_task(platform.running["relay-b"].runtime.drain())
    try:
        await load_shown(platform, "relay-b", publications=1, draining=True)
        for _ in range(3):
            _, address = await new_room_relay(platform)
            assert address == platform.addresses["relay-a"]
        # The room already on the draining relay stays there, and the relay serves its stream meanwhile.
        assert await relay_of(platform, placed_on_b) == platform.addresses["relay-b"]
        feed = await platform.stubs["relay-b"].GetStats(
            relay_pb2.GetStatsRequest(room_id="staying", feed_id="f1")
        )
        assert feed.feed.feed_id == "f1"
        assert not draining.done()
        await platform.stubs["relay-b"].Unpublish(relay_pb2.UnpublishRequest(room_id="staying", feed_id="f1"))
        async with asyncio.timeout(10):
            await draining
    finally:
        draining.cancel()
        await publisher.close()
