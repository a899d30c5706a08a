"""A relay node of two workers (`PARLEY_RELAY__WORKERS=2`), started as `python -m services.relay` is in a
pod: each worker registers with the room manager as a relay of its own, two rooms are placed on the two
workers, and a publisher's media reaches a subscriber in each room, through that room's worker and its
own UDP port (`udp_port` + the worker's index)."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from parley.relay.v1 import relay_pb2_grpc
from parley.rooms.v1 import room_sessions_pb2_grpc, rooms_pb2, rooms_pb2_grpc
from relay_clients import TONE_HZ, Publisher, Subscriber, publish, subscribe, wait_until

from services.core.config import ServiceName
from services.core.embedded_broker import free_port
from services.core.rpc import check_health
from services.rooms.manager import RoomManager
from tests.testing import Instance, Platform, start_platform

pytestmark = pytest.mark.integration

NODE_ID = "node-a"
# Registrations are renewed every second: a worker shows up quickly.
RELAY_LEASE_S = 3.0


def udp_port_pair_free(port: int) -> bool:
    for candidate in (port, port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def free_udp_port_pair() -> int:
    """A port P with P and P + 1 free for UDP: the node's two workers' media ports."""
    for _ in range(100):
        port = free_port()
        if udp_port_pair_free(port):
            return port
    raise RuntimeError("no two consecutive free UDP ports")


@dataclass
class TwoWorkers:
    platform: Platform
    manager: RoomManager
    rooms: rooms_pb2_grpc.RoomServiceStub
    sessions: room_sessions_pb2_grpc.RoomSessionServiceStub
    udp_port: int
    # Clients of each worker, by the gRPC address it registered.
    relays: dict[str, relay_pb2_grpc.RelayServiceStub]


@pytest.fixture
async def two_workers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TwoWorkers]:
    udp_port = free_udp_port_pair()
    # The relay as a real process; the fallback address the room manager has is worker 0's.
    relay = Instance(
        ServiceName.RELAY,
        process=True,
        settings={"relay": {"workers": 2, "relay_id": NODE_ID, "udp_port": udp_port}},
    )
    async with start_platform(
        tmp_path_factory.mktemp("relay-workers"),
        ServiceName.ROOMS,
        relay,
        settings={"rooms": {"relay_lease_s": RELAY_LEASE_S}},
    ) as platform:
        channels: list[grpc.aio.Channel] = []
        try:
            node = TwoWorkers(
                platform=platform,
                manager=platform["rooms"].built,
                rooms=platform.stub(rooms_pb2_grpc.RoomServiceStub, ServiceName.ROOMS),
                sessions=platform.stub(room_sessions_pb2_grpc.RoomSessionServiceStub, ServiceName.ROOMS),
                udp_port=udp_port,
                relays={},
            )
            await wait_until(
                lambda: set(node.manager.relays.live()) == {NODE_ID, f"{NODE_ID}-1"}, timeout_s=20
            )
            for worker in node.manager.relays.live().values():
                channels.append(grpc.aio.insecure_channel(worker.address))
                node.relays[worker.address] = relay_pb2_grpc.RelayServiceStub(channels[-1])
            yield node
        finally:
            for channel in channels:
                await channel.close()


async def open_session(node: TwoWorkers, uid: str) -> str:
    session_id = uuid.uuid4().hex
    await node.sessions.OpenSession(
        rooms_pb2.OpenSessionRequest(
            session_id=session_id,
            biz_name="relay-workers",
            uid=uid,
            attachment=rooms_pb2.Attachment(
                gateway_id="gw", gateway_address=f"127.0.0.1:{free_port()}", connection_id=session_id
            ),
        )
    )
    return session_id


@dataclass
class Call:
    room_id: str
    relay_address: str
    publisher: Publisher
    subscriber: Subscriber


async def start_call(node: TwoWorkers) -> Call:
    """A room with a publisher and a subscriber, each negotiated as a gateway does: the room manager names
    the relay, the relay answers, the room manager is told."""
    creator = await open_session(node, "alice")
    created = await node.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(session_id=creator))
    room_id = created.room.room_id
    slot = await node.sessions.StartPublish(rooms_pb2.StartPublishRequest(session_id=creator, media_type=1))
    relay = node.relays[slot.relay.address]
    publisher = Publisher()
    published = await publish(relay, publisher, room_id=room_id, feed_id=slot.feed_id, uid="alice")
    await node.sessions.CompletePublish(
        rooms_pb2.CompletePublishRequest(session_id=creator, feed_id=slot.feed_id, tracks=published.tracks)
    )

    joiner = await open_session(node, "bob")
    await node.sessions.JoinRoom(
        rooms_pb2.JoinRoomRequest(session_id=joiner, room_id=room_id, rtoken=created.room.rtoken)
    )
    wanted = await node.sessions.StartSubscribe(
        rooms_pb2.StartSubscribeRequest(session_id=joiner, feed_id=slot.feed_id, audio=True, video=True)
    )
    assert wanted.relay.address == slot.relay.address
    subscriber = Subscriber()
    subscribed = await subscribe(relay, subscriber, room_id=room_id, feed_id=slot.feed_id, uid="bob")
    await node.sessions.CompleteSubscribe(
        rooms_pb2.CompleteSubscribeRequest(
            session_id=joiner,
            feed_id=slot.feed_id,
            subscription_id=subscribed.subscription_id,
            tracks=subscribed.tracks,
        )
    )
    return Call(room_id, slot.relay.address, publisher, subscriber)


def remote_port(client: Publisher | Subscriber) -> int:
    """The relay port the client's nominated ICE pair sends to."""
    connection = client.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
    [pair] = connection._nominated.values()
    return int(pair.remote_candidate.port)


async def test_two_rooms_go_to_two_workers_and_both_forward(two_workers: TwoWorkers) -> None:
    node = two_workers
    workers = node.manager.relays.live()
    # Two relays to the room manager, each at its own gRPC address.
    assert workers[NODE_ID].address == node.platform["relay"].grpc_address
    assert workers[f"{NODE_ID}-1"].address != workers[NODE_ID].address

    calls: list[Call] = []
    try:
        for _ in range(2):
            calls.append(await start_call(node))
        assert {call.relay_address for call in calls} == {relay.address for relay in workers.values()}

        await wait_until(
            lambda: all(
                len(call.subscriber.received.video_frames) >= 30
                and len(call.subscriber.received.audio_frames) >= 50
                for call in calls
            ),
            timeout_s=30,
        )
        for call in calls:
            # The test picture and tone, decoded (thresholds as test_forwarding.py's): forwarded, not only
            # connected.
            received = call.subscriber.received
            assert statistics.median(error for *_, error in received.video_frames) < 6
            assert abs(statistics.median(hz for _, hz in received.audio_frames[10:]) - TONE_HZ) < 40

        # Each worker's media on its own port: worker 0 on udp_port, worker 1 on udp_port + 1.
        port_of_worker = {
            workers[NODE_ID].address: node.udp_port,
            workers[f"{NODE_ID}-1"].address: node.udp_port + 1,
        }
        for call in calls:
            assert remote_port(call.publisher) == port_of_worker[call.relay_address]
            assert remote_port(call.subscriber) == port_of_worker[call.relay_address]

        # Both workers report what they carry: one publication and one subscription each.
        def both_loaded() -> bool:
            live = node.manager.relays.live()
            return (
                all(relay.load.publications == 1 and relay.load.subscriptions == 1 for relay in live.values())
                and len(live) == 2
            )

        await wait_until(both_loaded, timeout_s=10)
    finally:
        for call in calls:
            await call.publisher.close()
            await call.subscriber.close()


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def running(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_worker_that_dies_is_started_again_as_a_new_relay_and_stopping_the_relay_stops_every_worker(
    two_workers: TwoWorkers,
) -> None:
    node = two_workers
    relay = node.platform["relay"]
    assert relay.process is not None
    pid = relay.process.pid
    [worker] = children_of(pid)
    old_address = node.manager.relays.live()[f"{NODE_ID}-1"].address

    os.kill(worker, signal.SIGKILL)
    # The killed worker is reaped and a new one started in its place.
    await wait_until(lambda: children_of(pid) not in ([], [worker]), timeout_s=10)
    [restarted] = children_of(pid)
    assert restarted != worker and running(restarted)
    # A new relay to the room manager: the dead one's lease lapses (its rooms are placed again), the new
    # one registers with an id and a gRPC address of its own.
    await wait_until(
        lambda: set(node.manager.relays.live()) == {NODE_ID, f"{NODE_ID}-1r1"}, timeout_s=RELAY_LEASE_S + 10
    )
    new_address = node.manager.relays.live()[f"{NODE_ID}-1r1"].address
    assert new_address != old_address
    async with grpc.aio.insecure_channel(new_address) as channel:
        assert await check_health(channel, timeout_s=5.0) == "SERVING"

    await node.platform.stop("relay")
    assert not running(restarted)
