"""Protocol v1 at /ws/v1, driven by a plain WebSocket client (the `websockets` library), against the gateway
and the licence service running in this process on a real Tansu broker, real gRPC and a real uvicorn.

Users sign as a customer's backend would (the app's private key, seed 002 section 4); devices are
activated and registered through the licence service and connect with the secret registration gave them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import itertools
import json
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from parley.licence.v1 import licence_pb2
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.core.config import ServiceName
from tests.integration.licence_helpers import App, create_app, register_device
from tests.testing import Instance, start_platform

# The second gateway gives clients a TURN server that shares this secret (nothing listens there).
TURN_URL = "turn:127.0.0.1:3478"
TURN_SECRET = "shared-with-coturn"


@dataclass
class Platform:
    ws_url: str
    # A second gateway process (own consumer group), with a frame rate limit high enough for one
    # connection to send 10,000 frames.
    fast_ws_url: str
    licence: LicenceServiceStub


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    fast = {
        "ws_rate_per_s": 1_000_000,
        "ws_rate_burst": 1_000_000,
        "client_ice": {"turn": {"urls": [TURN_URL], "secret": TURN_SECRET}},
    }
    async with start_platform(
        tmp_path_factory.mktemp("ws"),
        ServiceName.LICENCE,
        ServiceName.GATEWAY,
        Instance(ServiceName.GATEWAY, settings={"gateway": fast}),
    ) as running:
        gateway, fast_gateway = running.gateways
        yield Platform(ws_url=gateway.ws_url, fast_ws_url=fast_gateway.ws_url, licence=running.licence)


@pytest.fixture(scope="module")
async def app(platform: Platform) -> App:
    return await create_app(platform.licence, "ws-tests")


@dataclass
class Client:
    """A plain WebSocket client speaking protocol v1: requests matched to responses by req_id, pushes kept."""

    ws: ClientConnection
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    async def call(self, cmd: str, timeout_s: float = 10, **params: Any) -> dict[str, Any]:
        req_id = f"r{next(self._ids)}"
        await self.ws.send(json.dumps({"cmd": cmd, "req_id": req_id, "params": params}, ensure_ascii=False))
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self.next_message()
                if message.get("req_id") == req_id:
                    return message

    async def next_message(self) -> dict[str, Any]:
        message = json.loads(await self.ws.recv())
        if "event" in message:
            self.events.append((time.perf_counter(), message))
        return dict(message)

    async def next_event(self, timeout_s: float = 5) -> tuple[float, dict[str, Any]]:
        async with asyncio.timeout(timeout_s):
            while not self.events:
                await self.next_message()
        return self.events.pop(0)

    async def close_code(self, timeout_s: float = 10) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        raise AssertionError("unreachable")


@pytest.fixture
async def open_client(platform: Platform) -> AsyncIterator[Any]:
    connections: list[ClientConnection] = []

    async def opener(url: str | None = None) -> Client:
        ws = await connect(url or platform.ws_url, proxy=None, open_timeout=10)
        connections.append(ws)
        return Client(ws)

    yield opener
    for ws in connections:
        await ws.close()


# connect / ping / disconnect


async def test_a_user_connects_with_a_signature_from_its_app_pings_and_disconnects(
    app: App, open_client: Any
) -> None:
    client = await open_client()
    params = app.connect_params("alice")
    answer = await client.call("connect", **params)
    assert answer["code"] == 0, answer
    assert answer["msg"] == "ok"
    data = answer["data"]
    assert set(data) == {"session_id", "uid", "biz_name", "expire_time_ms", "ice_servers"}
    assert (data["uid"], data["biz_name"]) == ("alice", app.biz_name)
    assert data["expire_time_ms"] > time.time() * 1000
    # No STUN/TURN servers are configured: host candidates only.
    assert data["ice_servers"] == []

    before = int(time.time() * 1000)
    pong = await client.call("ping")
    assert pong["code"] == 0 and before - 5 <= pong["data"]["ts"] <= int(time.time() * 1000) + 5

    assert await client.call("disconnect") == {"req_id": "r2", "code": 0, "msg": "ok", "data": {}}
    assert await client.close_code() == 1000


async def test_connect_answers_turn_credentials_minted_for_the_client(
    platform: Platform, app: App, open_client: Any
) -> None:
    client = await open_client(platform.fast_ws_url)
    answer = await client.call("connect", **app.connect_params("carol"))
    assert answer["code"] == 0, answer
    [turn] = answer["data"]["ice_servers"]
    assert turn["urls"] == [TURN_URL]
    # coturn's use-auth-secret check: the username names its expiry, the credential is its HMAC-SHA1.
    expiry, uid = turn["username"].split(":")
    assert uid == "carol" and int(expiry) > time.time() + 3600
    digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


async def test_bad_signatures_get_102_with_the_reason(app: App, open_client: Any) -> None:
    client = await open_client()
    good = app.connect_params("bob")
    cases = {
        "SIGNATURE_MALFORMED": {**good, "sign": base64.b64encode(b"x" * 256).decode()},
        "SIGNATURE_WRONG_UID": {**good, "uid": "mallory"},
        "SIGNATURE_EXPIRED": {**good, "sign": app.sign("bob", int(time.time() * 1000) - 1000)},
        "SIGNATURE_WRONG_APP": {**good, "sub_biz": "not_this_app"},
    }
    for reason, params in cases.items():
        answer = await client.call("connect", **params)
        assert (answer["code"], answer["reason"]) == (-102, reason), answer
    # The connection is still usable, and the right signature still works on it.
    assert (await client.call("connect", **good))["code"] == 0


async def test_only_connect_and_ping_come_before_connect(open_client: Any) -> None:
    client = await open_client()
    answer = await client.call("disconnect")
    assert (answer["code"], answer["reason"]) == (-91004, "NOT_CONNECTED")
    assert (await client.call("ping"))["code"] == 0


async def test_repeated_failed_connects_of_one_uid_are_throttled(app: App, open_client: Any) -> None:
    client = await open_client()
    uid = f"guesser_{uuid.uuid4().hex[:8]}"
    wrong = {**app.connect_params(uid), "sign": app.sign("someone_else", int(time.time() * 1000) + 60_000)}
    for _ in range(5):
        assert (await client.call("connect", **wrong))["code"] == -102
    answer = await client.call("connect", **app.connect_params(uid))
    assert (answer["code"], answer["reason"]) == (-91006, "CONNECT_THROTTLED")
    assert answer["data"]["retry_after_ms"] > 50_000
    # Other uids are not affected.
    assert (await client.call("connect", **app.connect_params("carol")))["code"] == 0


async def test_a_user_session_is_closed_with_4001_when_its_signature_expires(
    app: App, open_client: Any
) -> None:
    client = await open_client()
    answer = await client.call("connect", **app.connect_params("dave", ttl_s=1.5))
    assert answer["code"] == 0, answer
    started = time.monotonic()
    assert await client.close_code(timeout_s=10) == 4001
    assert time.monotonic() - started < 5


async def test_a_device_connects_with_its_registration_secret(
    platform: Platform, app: App, open_client: Any
) -> None:
    sn, secret = await register_device(platform.licence, app)
    client = await open_client()
    wrong = await client.call("connect", sn=sn, device_secret="not-the-secret")
    assert wrong["code"] != 0 and wrong["msg"]
    answer = await client.call("connect", sn=sn, device_secret=secret)
    assert answer["code"] == 0, answer
    assert answer["data"] == {
        "session_id": answer["data"]["session_id"],
        "sn": sn,
        "biz_name": app.biz_name,
        "ice_servers": [],
    }


# Pushes


async def test_authorising_a_user_reaches_the_connected_device(
    platform: Platform, app: App, open_client: Any
) -> None:
    sn, secret = await register_device(platform.licence, app)
    device = await open_client()
    assert (await device.call("connect", sn=sn, device_secret=secret))["code"] == 0

    # The latency is measured in bench/authorisation_push.py; here the push must arrive, in order.
    for authorised, status in ((True, 1), (False, 0), (True, 1)):
        await platform.licence.SetAuthorisation(
            licence_pb2.SetAuthorisationRequest(
                biz_name=app.biz_name, sn=sn, open_id="open_ann", authorised=authorised
            ),
            timeout=10,
        )
        _, push = await device.next_event(timeout_s=10)
        assert push == {
            "event": "on_update_authorize_status",
            "data": {"open_id": "open_ann", "status": status},
        }


async def test_a_device_connected_to_two_gateways_is_told_on_both(
    platform: Platform, app: App, open_client: Any
) -> None:
    sn, secret = await register_device(platform.licence, app)
    sessions = [await open_client(platform.ws_url), await open_client(platform.fast_ws_url)]
    for session in sessions:
        assert (await session.call("connect", sn=sn, device_secret=secret))["code"] == 0
    other_sn, other_secret = await register_device(platform.licence, app)
    bystander = await open_client()
    assert (await bystander.call("connect", sn=other_sn, device_secret=other_secret))["code"] == 0

    await platform.licence.SetAuthorisation(
        licence_pb2.SetAuthorisationRequest(
            biz_name=app.biz_name, sn=sn, open_id="open_ben", authorised=True
        ),
        timeout=10,
    )
    for session in sessions:
        _, push = await session.next_event(timeout_s=5)
        assert push["data"] == {"open_id": "open_ben", "status": 1}
    assert (await bystander.call("ping"))["code"] == 0
    assert bystander.events == []


# Bad input


MALFORMED = [
    "not json",
    "{",
    "[]",
    '"cmd"',
    "42",
    '{"req_id": "r"}',
    '{"cmd": "ping"}',
    '{"cmd": "ping", "req_id": 5}',
    '{"cmd": "ping", "req_id": "r", "params": []}',
    '{"cmd": "fly", "req_id": "r"}',
    '{"cmd": "connect", "req_id": "r", "params": {"uid": 1}}',
    '{"cmd": "connect", "req_id": "r", "params": {"sn": ""}}',
    '{"cmd": "disconnect", "req_id": "r"}',
    "[" * 5000,
    '{"cmd": "ping", "req_id": "r", "n": ' + "9" * 5000 + "}",
]


async def send_malformed(client: Client, count: int, offset: int = 0) -> list[int]:
    """Send `count` malformed frames and read one error answer for each; their codes."""
    await asyncio.gather(*(client.ws.send(MALFORMED[(offset + n) % len(MALFORMED)]) for n in range(count)))
    return [(await client.next_message())["code"] for _ in range(count)]


async def test_malformed_frames_are_answered_with_codes_and_the_connection_stays(open_client: Any) -> None:
    client = await open_client()
    codes = await send_malformed(client, len(MALFORMED))
    assert sorted(set(codes)) == [-91004, -91003, -91002, -91001]
    assert all(code != 0 for code in codes)
    assert (await client.call("ping"))["code"] == 0


async def test_an_oversized_frame_closes_with_1009_and_others_are_untouched(open_client: Any) -> None:
    bystander = await open_client()
    client = await open_client()
    frame = json.dumps({"cmd": "ping", "req_id": "big", "params": {"pad": "x" * (64 * 1024)}})
    await client.ws.send(frame)
    assert await client.close_code() == 1009
    assert (await bystander.call("ping"))["code"] == 0
    # Just under the limit is fine.
    fits = await open_client()
    padding = 64 * 1024 - len(json.dumps({"cmd": "ping", "req_id": "r0", "params": {"pad": ""}}).encode())
    assert (await fits.call("ping", pad="é" * (padding // 2)))["code"] == 0


async def test_a_flood_closes_with_1008_and_others_are_untouched(open_client: Any) -> None:
    bystander = await open_client()
    client = await open_client()
    for n in range(300):
        try:
            await client.ws.send(json.dumps({"cmd": "ping", "req_id": f"f{n}"}))
        except ConnectionClosed:
            break
    assert await client.close_code() == 1008
    assert (await bystander.call("ping"))["code"] == 0


async def test_a_binary_frame_closes_with_1003(open_client: Any) -> None:
    client = await open_client()
    await client.ws.send(b"\x00\x01binary")
    assert await client.close_code() == 1003


async def watch_pings(client: Client, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        assert (await client.call("ping", timeout_s=5))["code"] == 0
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def settled_task_count(expected: int, timeout_s: float = 10) -> int:
    async with asyncio.timeout(timeout_s):
        while len(asyncio.all_tasks()) > expected:
            await asyncio.sleep(0.05)
    return len(asyncio.all_tasks())


async def test_ten_thousand_malformed_frames_across_connections_leave_the_gateway_answering(
    platform: Platform, open_client: Any
) -> None:
    watcher = await open_client()
    tasks_before = len(asyncio.all_tasks())
    stop = asyncio.Event()
    ping_latencies: list[float] = []
    pinging = asyncio.create_task(watch_pings(watcher, stop, ping_latencies))

    async def one_connection(n: int) -> list[int]:
        # 100 frames fit the default burst, so the rate limit does not close these connections.
        async with connect(platform.ws_url, proxy=None) as ws:
            return await send_malformed(Client(ws), 100, offset=n)

    codes: list[int] = []
    for batch in range(10):
        for answers in await asyncio.gather(*(one_connection(batch * 10 + n) for n in range(10))):
            codes.extend(answers)
    stop.set()
    await pinging

    assert len(codes) == 10_000 and 0 not in codes
    # The watcher's pings were answered throughout (each within watch_pings' 5 s call timeout).
    assert ping_latencies
    # Every connection's tasks are gone: nothing leaks per connection.
    assert await settled_task_count(tasks_before) <= tasks_before


async def test_ten_thousand_malformed_frames_on_one_connection_leave_the_gateway_answering(
    platform: Platform, open_client: Any
) -> None:
    watcher = await open_client(platform.fast_ws_url)
    client = await open_client(platform.fast_ws_url)
    stop = asyncio.Event()
    ping_latencies: list[float] = []
    pinging = asyncio.create_task(watch_pings(watcher, stop, ping_latencies))
    codes: list[int] = []
    for window in range(100):
        codes.extend(await send_malformed(client, 100, offset=window))
    stop.set()
    await pinging
    assert len(codes) == 10_000 and 0 not in codes
    assert (await client.call("ping"))["code"] == 0
    assert ping_latencies


# Memory held by the code that serves connections: the gateway and the WebSocket and HTTP servers under it.
# Not what logging and tracing allocate on their way (timestamps, formatted exceptions): what they keep is
# bounded by their own buffers, and under pytest the harness keeps what is logged for its report.
GATEWAY_CODE = [
    *(
        tracemalloc.Filter(True, pattern, all_frames=True)
        for pattern in ("*/services/gateway/*", "*/websockets/*", "*/uvicorn/*")
    ),
    *(
        tracemalloc.Filter(False, pattern, all_frames=True)
        for pattern in ("*/structlog/*", "*/opentelemetry/*", "*/logging/*", "*/traceback.py")
    ),
]


def gateway_memory() -> int:
    gc.collect()
    return sum(
        stat.size for stat in tracemalloc.take_snapshot().filter_traces(GATEWAY_CODE).statistics("filename")
    )


async def test_sessions_that_come_and_go_leave_the_gateways_memory_where_it_was(
    platform: Platform, app: App
) -> None:
    async def session_round(round_: int) -> None:
        async def one_session(n: int) -> None:
            # Not `open_client`: its connections live until the test ends, and this counts memory.
            async with connect(platform.ws_url, proxy=None, open_timeout=10) as ws:
                client = Client(ws)
                assert (await client.call("connect", **app.connect_params(f"leak_{round_}_{n}")))["code"] == 0
                frames = [frame for frame in MALFORMED if '"disconnect"' not in frame]
                await asyncio.gather(*(ws.send(frame) for frame in frames))
                assert [(await client.next_message())["code"] for _ in frames].count(0) == 0
                assert (await client.call("disconnect"))["code"] == 0

        # Five at a time: tracing every allocation slows the in-process licence service's signature checks.
        for batch in range(3):
            await asyncio.gather(*(one_session(batch * 5 + n) for n in range(5)))

    # The first round fills what is allocated once (caches, pools, interned strings).
    await session_round(0)
    tracemalloc.start(16)
    try:
        held = []
        for round_ in range(1, 7):
            await session_round(round_)
            held.append(gateway_memory())
    finally:
        tracemalloc.stop()
    # 75 sessions and 1,050 malformed frames between the first and the last measure. A leak of a few hundred
    # bytes per session or a few dozen per frame would grow past this; what is held steady (buffers that
    # are reused, caches that are full) does not grow at all.
    assert held[-1] - held[0] < 16 * 1024, held


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(open_client: Any) -> None:
    client = await open_client()
    await client.ws.send(b'{"cmd": "ping", "req_id": "\xff"}', text=True)
    assert await client.close_code() == 1007


async def test_a_client_that_does_not_read_is_closed_with_1013_and_others_are_untouched(
    platform: Platform, open_client: Any
) -> None:
    bystander = await open_client(platform.fast_ws_url)
    client = await open_client(platform.fast_ws_url)
    req_id = "x" * 128
    frame = json.dumps({"cmd": "ping", "req_id": req_id})
    # The answers fill the socket buffers, then the gateway's queue for this client (256), long before the
    # last of these frames; reading afterwards finds the close at the end of what got through.
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(60):
            for _ in range(200_000):
                await client.ws.send(frame)
    assert await client.close_code(timeout_s=30) == 1013
    assert (await bystander.call("ping"))["code"] == 0
