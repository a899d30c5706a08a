"""The two SFUs under test behind one interface: Parley's relay as its own process (gRPC
Publish/Subscribe) and Janus's VideoRoom (HTTP API, JSEP)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import grpc
from parley.relay.v1 import relay_pb2, relay_pb2_grpc

from relay import janus
from relay.loadgen import Publisher, Subscriber, wait_until
from services.core.embedded_broker import EmbeddedBroker, free_port

ROOT = Path(__file__).resolve().parents[2]


class Sfu(Protocol):
    name: str

    @property
    def pid(self) -> int: ...

    @property
    def log_path(self) -> Path:
        """The SFU's own log (in the run's temporary folder: `bench/relay/sfu_logs.py` keeps it)."""
        ...

    async def open_room(self, room: int, publishers: int) -> None: ...

    async def publish(self, room: int, feed: int, publisher: Publisher) -> None: ...

    async def subscribe(self, room: int, feed: int, uid: str, subscriber: Subscriber) -> None: ...

    async def close_room(self, room: int) -> None: ...

    async def stop(self) -> None: ...


def spawn_relay(
    env: dict[str, str], log: Path, cpus: set[int], loop: str, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """The relay as production starts it, on the event loop chosen (PARLEY_EVENT_LOOP), from the source
    tree `root` (this one, or another version of the relay, for bench/relay/ab.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.relay"],
        cwd=root,
        env=dict(env, PARLEY_EVENT_LOOP=loop),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )


class ParleyRelay:
    """`python -m services.relay` as production runs it (uvloop, unless told asyncio), with a
    Tansu broker for its metering ticks; gRPC calls go through a blocking stub in a thread so this process
    can run uvloop."""

    name = "parley"

    def __init__(self, folder: Path, cpus: set[int], loop: str = "uvloop", root: Path = ROOT) -> None:
        self._folder = folder
        self._cpus = cpus
        self._loop = loop
        self._root = root
        self._broker = EmbeddedBroker(log_path=folder / "broker.log")
        self._process: subprocess.Popen[bytes] | None = None
        self._stub: relay_pb2_grpc.RelayServiceStub | None = None
        self._feeds: dict[int, list[int]] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self._folder / "relay.log"

    async def start(self) -> None:
        await self._broker.start()
        address = f"127.0.0.1:{free_port()}"
        env = dict(
            os.environ,
            PARLEY_ENVIRONMENT="development",
            PARLEY_DATA_DIR=str(self._folder / "data"),
            # INFO: a line per stream opened or closed, with its close code, which says why a window
            # forwarded nothing or a feed went away mid-run (nothing is logged per packet).
            PARLEY_LOG_LEVEL="INFO",
            PARLEY_KAFKA__BOOTSTRAP_SERVERS=self._broker.bootstrap_servers,
            PARLEY_GRPC__RELAY=address,
            PARLEY_RELAY__LISTEN_ADDRESS="127.0.0.1",
            PARLEY_RELAY__CANDIDATE_NETWORKS=json.dumps(["127.0.0.0/8"]),
        )
        self._process = spawn_relay(env, self._folder / "relay.log", self._cpus, self._loop, self._root)
        channel = grpc.insecure_channel(address)
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise SystemExit(f"the relay exited: see {self._folder / 'relay.log'}")
            try:
                await asyncio.to_thread(grpc.channel_ready_future(channel).result, 1)
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise SystemExit("the relay did not come up") from None
        self._stub = relay_pb2_grpc.RelayServiceStub(channel)

    async def open_room(self, room: int, publishers: int) -> None:
        self._feeds[room] = []

    async def publish(self, room: int, feed: int, publisher: Publisher) -> None:
        assert self._stub is not None
        request = relay_pb2.PublishRequest(
            biz_name="bench",
            room_id=str(room),
            uid=f"pub{feed}",
            feed_id=str(feed),
            sdp_offer=await publisher.offer(),
        )
        response = await asyncio.to_thread(self._stub.Publish, request)
        await publisher.accept(response.sdp_answer)
        self._feeds[room].append(feed)

    async def subscribe(self, room: int, feed: int, uid: str, subscriber: Subscriber) -> None:
        assert self._stub is not None
        request = relay_pb2.SubscribeRequest(
            biz_name="bench",
            room_id=str(room),
            uid=uid,
            feed_id=str(feed),
            sdp_offer=await subscriber.offer(),
            audio=False,
            video=True,
        )
        response = await asyncio.to_thread(self._stub.Subscribe, request)
        await subscriber.accept(response.sdp_answer)

    async def close_room(self, room: int) -> None:
        assert self._stub is not None
        for feed in self._feeds.pop(room, []):
            await asyncio.to_thread(
                self._stub.Unpublish, relay_pb2.UnpublishRequest(room_id=str(room), feed_id=str(feed))
            )

    async def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 20)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._broker.stop()


def loopback_only(sdp: str) -> str:
    """Janus's SDP, once every candidate in it is checked to be on 127.0.0.0/8 (the shim must not
    make any other interface's address reachable)."""
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and not line.split()[4].startswith("127."):
            raise janus.JanusError(f"Janus offered a candidate off loopback: {line}")
    if "a=candidate:" not in sdp:
        raise janus.JanusError("Janus offered no ICE candidate (is the loopback shim preloaded?)")
    return sdp


class JanusVideoRoom:
    """Janus with the loopback shim; one HTTP session, a handle per publisher and per subscriber."""

    name = "janus"

    def __init__(self, folder: Path, cpus: set[int]) -> None:
        self._folder = folder
        self._cpus = cpus
        self._process: subprocess.Popen[bytes] | None = None
        self._session: janus.JanusSession | None = None
        self._admin = 0
        self._handles: dict[int, list[int]] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self._folder / "janus.log"

    async def start(self) -> None:
        self._process, port = await asyncio.to_thread(janus.start_on_free_port, self._folder, self._cpus)
        self._session = janus.JanusSession(f"http://127.0.0.1:{port}")
        await self._session.open()
        self._admin = await self._session.attach()

    async def open_room(self, room: int, publishers: int) -> None:
        assert self._session is not None
        await self._session.message(
            self._admin,
            {
                "request": "create",
                "room": room,
                "publishers": publishers + 1,
                "videocodec": "vp8",
                # No bitrate cap (REMB) and no periodic key frame requests: Parley's relay does neither.
                "bitrate": 0,
                "fir_freq": 0,
                "notify_joining": False,
            },
        )
        self._handles[room] = []

    async def publish(self, room: int, feed: int, publisher: Publisher) -> None:
        assert self._session is not None
        handle = await self._session.attach()
        self._handles[room].append(handle)
        await self._session.message(
            handle,
            {"request": "join", "ptype": "publisher", "room": room, "id": feed, "display": f"pub{feed}"},
        )
        reply = await self._session.message(
            handle, {"request": "publish"}, {"type": "offer", "sdp": await publisher.offer()}
        )
        await publisher.accept(loopback_only(reply["jsep"]["sdp"]))
        # Janus lists a feed to subscribers only once its publisher's PeerConnection is up.
        if not await wait_until(lambda: publisher.pc.connectionState == "connected", 20):
            raise janus.JanusError(f"publisher {feed} did not connect")

    async def subscribe(self, room: int, feed: int, uid: str, subscriber: Subscriber) -> None:
        assert self._session is not None
        handle = await self._session.attach()
        self._handles[room].append(handle)
        reply = await self._session.message(
            handle, {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}
        )
        answer = await subscriber.answer(loopback_only(reply["jsep"]["sdp"]))
        await self._session.message(handle, {"request": "start"}, {"type": "answer", "sdp": answer})

    async def close_room(self, room: int) -> None:
        assert self._session is not None
        for handle in self._handles.pop(room, []):
            await self._session.detach(handle)
        await self._session.message(self._admin, {"request": "destroy", "room": room})

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 20)
            except subprocess.TimeoutExpired:
                self._process.kill()
