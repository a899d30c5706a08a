"""A leading room manager cut off from the network, not killed: it runs in a network namespace of the test's
own (tests/network_namespace.py), reaching Redis, the broker, the licence service, the gateway and the relay
through a veth link, and the link is taken down mid-call. The standby on loopback takes the lead and the
room over (the room's lease epoch goes up), and the call goes on through it: the gateway's channel gives up
the silent link (keepalive) and moves to the other address. The cut-off room manager stops on its own once
its lease is gone; its supervisor (here the test) starts it again at once, still cut off, and it waits for
the store; once the link is back it stands by: alive, not serving, not leading, while the other serves a new
room. From the takeover on, nothing of the cut-off room manager arrives anywhere, while the link is down nor
once it is back: no push at the gateway, no relay order at the relay (both told apart by the address they
come from), no fact (each fact of the room once, none saying that a participant the new leader holds left
or that a feed ended)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from parley.rooms.v1 import events_pb2, rooms_pb2
from parley.rooms.v1.rooms_pb2_grpc import RoomServiceStub

from services.core.config import ServiceName
from services.core.embedded_broker import free_port
from services.core.rpc import check_health
from services.core.topics import Topic
from services.gateway.room_pushes import SessionDeliveryServicer
from services.relay.grpc_api import RelayServicer
from tests.integration.licence_helpers import create_app
from tests.integration.media_call import call_in_a_room
from tests.integration.protocol_client import Connections
from tests.integration.rooms.test_rooms_survive_restart import on_redis, until_found
from tests.network_namespace import NamespaceLink, namespace_link
from tests.redis_keys import RedisLink, fresh_prefix
from tests.testing import Instance, Platform, RunningService, running_broker, start_platform

ROOM_LEASE_S = 6.0
# The gateway heartbeats every third of it; the sessions of a gateway not heard for a lease leave after the
# grace. Short on the room manager cut off, which hears no heartbeat: its participants leave (and their feed
# and subscription end) while it still holds the room, and what it does then must reach nobody. Long on the
# other, for the gateway to move to it (services/core/rpc.py, CHANNEL_OPTIONS) with its sessions kept.
GATEWAY_LEASE_S = 1.5
SESSION_GRACE_S = 0.5
PATIENT = {"rooms": {"gateway_lease_s": 10.0, "session_grace_s": 20.0}}
ROOM_FACTS = (
    events_pb2.RoomCreated,
    events_pb2.ParticipantJoined,
    events_pb2.ParticipantLeft,
    events_pb2.RoomDestroyed,
    events_pb2.FeedPublished,
    events_pb2.FeedUnpublished,
    events_pb2.SubscriptionStarted,
    events_pb2.SubscriptionEnded,
)


@dataclass
class Heard:
    """What reached the gateway and the relay from room managers: (when, what, from which address)."""

    calls: list[tuple[float, str, str]] = field(default_factory=list)

    def from_address(self, address: str, since: float) -> list[tuple[float, str, str]]:
        return [call for call in self.calls if call[0] >= since and f":{address}:" in call[2]]


def listening(heard: Heard, monkeypatch: pytest.MonkeyPatch, servicer: type, method: str) -> None:
    """Note each call of a servicer's `method` before it is served (patched before the service is built)."""
    served: Callable[..., Awaitable[Any]] = getattr(servicer, method)

    async def noting(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        heard.calls.append((time.monotonic(), method, context.peer()))
        return await served(self, request, context)

    monkeypatch.setattr(servicer, method, noting)


async def test_a_room_manager_cut_off_stops_acting_and_stands_by_when_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = Heard()
    listening(heard, monkeypatch, SessionDeliveryServicer, "Deliver")
    for order in ("Unpublish", "Unsubscribe"):
        listening(heard, monkeypatch, RelayServicer, order)
    async with (
        namespace_link() as link,
        fresh_prefix() as (store, prefix),
        partitioned_platform(tmp_path, link, prefix) as (platform, cut_off, ops_url),
    ):
        facts = await platform.record([Topic.ROOM, Topic.FEED], ROOM_FACTS)
        app = await create_app(platform.licence, "partition")
        async with call_in_a_room(app, platform.ws_url) as (alice, bob, media):
            room_id = media.room_id
            leader = await store.get(f"{prefix}leader")
            owner, epoch = await lease_of(store, prefix, room_id)
            assert heard.from_address(link.address, since=0), "the namespace's room manager sent nothing"

            await link.cut()
            cut_at = time.monotonic()
            await platform.until_serving("rooms-2")
            taken = await until_found(platform.stub(RoomServiceStub, "rooms-2"), room_id, within_s=30)
            taken_at = time.monotonic()
            new_owner, new_epoch = await lease_of(store, prefix, room_id)
            new_leader = await store.get(f"{prefix}leader")
            assert new_leader != leader
            assert (new_owner != owner, new_epoch > epoch) == (True, True)
            print(f"taken over {taken_at - cut_at:.1f} s after the cut, epoch {epoch} -> {new_epoch}")
            # The call goes on through the new leader.
            await until_heard(alice, bob, "still there?")
            assert sorted(p.uid for p in taken.participants) == sorted([alice.uid, bob.uid])

            # Cut off from the store for a lease, it stops on its own, still cut off.
            await until_exited(cut_off.process, within_s=ROOM_LEASE_S * 3)
            assert cut_off.log_path is not None
            log = cut_off.log_path.read_text()
            tried = ("room_store_commit_failed", "delivery_failed", "relay_order_failed")
            print("what it tried while cut off:", {event: log.count(event) for event in tried})

            # Its supervisor starts it again at once, still cut off: it stands by, waiting for the store.
            cut_off.standby = True
            await platform.restart("rooms")
            await asyncio.sleep(ROOM_LEASE_S)
            assert cut_off.process is not None and cut_off.process.poll() is None
            await link.restore()
            await until_heard(bob, alice, "yes")
            await until_alive(ops_url, within_s=30)
            await asyncio.sleep(ROOM_LEASE_S)
            # Back on the network it stands by: alive, not serving, not leading.
            async with grpc.aio.insecure_channel(cut_off.grpc_address) as channel:
                assert await check_health(channel, timeout_s=2) == "UNREACHABLE"
            assert cut_off.process.poll() is None
            assert await store.get(f"{prefix}leader") == new_leader
            # A new room is served, by the leader on loopback.
            carols = Connections(app)
            try:
                carol = await carols.open(platform.ws_url)
                later_id = (await carol.ok("create_room"))["room_id"]
            finally:
                await carols.close()
            await until_found(platform.stub(RoomServiceStub, "rooms-2"), later_id, within_s=5)
            await facts.wait_for(later_id, "RoomCreated")
            await asyncio.sleep(ROOM_LEASE_S)

            # Nothing of the cut-off room manager reached anyone after the takeover.
            assert heard.from_address(link.address, since=taken_at) == []
            # Each fact of the room once; nobody the new leader holds left, no stream ended.
            ids = [envelope.id for _, envelope in facts.of(room_id)]
            assert len(ids) == len(set(ids))
            types = facts.types(room_id)
            assert (types.count("RoomCreated"), types.count("FeedPublished")) == (1, 1), types
            ended = {"ParticipantLeft", "FeedUnpublished", "SubscriptionEnded", "RoomDestroyed"}
            assert not ended & set(types), types
            still = await platform.stub(RoomServiceStub, "rooms-2").GetRoom(
                rooms_pb2.GetRoomRequest(room_id=room_id), timeout=5
            )
            assert sorted(p.uid for p in still.participants) == sorted([alice.uid, bob.uid])
            assert await lease_of(store, prefix, room_id) == (new_owner, new_epoch)


@asynccontextmanager
async def partitioned_platform(
    tmp_path: Path, link: NamespaceLink, prefix: str
) -> AsyncIterator[tuple[Platform, RunningService, str]]:
    """A broker, Redis (through a relay), the licence service, a relay and a gateway reachable from the
    namespace on this end of the link; a leading room manager in the namespace, another on loopback standing
    by. Yields the platform, the room manager in the namespace, and its /livez URL."""
    redis_link = RedisLink(link.host_address)
    await redis_link.open()
    settings = on_redis(
        prefix, room_lease_s=ROOM_LEASE_S, gateway_lease_s=GATEWAY_LEASE_S, session_grace_s=SESSION_GRACE_S
    )
    settings["grpc"] = {
        name.value: f"{link.host_address}:{free_port(link.host_address)}"
        for name in (ServiceName.LICENCE, ServiceName.GATEWAY, ServiceName.RELAY)
    }
    try:
        async with (
            running_broker(tmp_path / "broker.log", host=link.host_address) as kafka,
            start_platform(tmp_path, kafka=kafka, settings=settings) as platform,
        ):
            # Nothing else listens in the namespace: any port is free there.
            ops_port = free_port()
            [cut_off] = await platform.start(
                Instance(
                    ServiceName.ROOMS,
                    process=True,
                    command_prefix=link.exec_prefix,
                    settings={
                        "grpc": {"rooms": f"{link.address}:{free_port()}"},
                        "rooms": {"redis_url": redis_link.url},
                        "ops": {"host": link.address, "port": ops_port},
                    },
                )
            )
            # Started once the first leads, so that it stands by.
            [other] = await platform.start(
                Instance(ServiceName.ROOMS, process=True, standby=True, settings=PATIENT)
            )
            reaching_either = {"grpc": {"rooms": f"ipv4:{cut_off.grpc_address},{other.grpc_address}"}}
            await platform.start(
                ServiceName.LICENCE,
                Instance(ServiceName.RELAY, settings=reaching_either),
                Instance(ServiceName.GATEWAY, settings=reaching_either),
            )
            yield platform, cut_off, f"http://{link.address}:{ops_port}/livez"
    finally:
        await redis_link.cut()


async def lease_of(store: Any, prefix: str, room_id: str) -> tuple[str, int]:
    """Who holds the room's lease, and at which epoch."""
    lease = await store.get(f"{prefix}lease:room:{room_id}")
    assert lease is not None, f"room {room_id} is leased to nobody"
    owner, epoch = lease.decode().rsplit(":", 1)
    return owner, int(epoch)


async def until_heard(sender: Any, receiver: Any, text: str) -> None:
    """`sender` says `text` in its room until the send succeeds, and `receiver` hears it."""
    async with asyncio.timeout(30):
        while (await sender.call("send_text", text=text)).get("code", 0) != 0:
            await asyncio.sleep(0.2)
    assert (await receiver.event("on_receive_text_msg", timeout_s=10))["text"] == text


async def until_exited(process: Any, *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while process.poll() is None:
        assert time.monotonic() < deadline, f"still running {within_s:.0f} s after the takeover"
        await asyncio.sleep(0.1)


async def until_alive(url: str, *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(trust_env=False) as client:
        while True:
            try:
                if (await client.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} does not answer"
            await asyncio.sleep(0.2)
