"""connect / disconnect / ping over a fake licence stub: codes, throttling, and what reaches the table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import grpc
import pytest
from opentelemetry.trace import NoOpTracer
from parley.licence.v1 import licence_pb2
from pydantic import SecretStr

from services.core.config import ClientIceSettings, IceServerSettings, TurnRestSettings
from services.core.errors import UNAVAILABLE, ParleyError
from services.gateway.commands import Commands, ConnectThrottle
from services.gateway.ice_servers import IceServerGrant
from services.gateway.sessions import Device, Session, SessionTable, User
from services.licence.errors import DEVICE_UNAUTHENTICATED, SIGNATURE_EXPIRED

NOW_MS = 1_700_000_000_000


def rpc_error(error: ParleyError) -> grpc.aio.AioRpcError:
    """The error a real stub raises when the licence service answers `error`."""
    status = error.to_status()
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


class FakeLicence:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.refusal: grpc.aio.AioRpcError | None = None
        self.verified = licence_pb2.VerifySignatureResponse(
            app_id="app1", workspace_id="ws1", expire_time=NOW_MS + 60_000
        )

    async def VerifySignature(self, request: Any, **call_options: Any) -> licence_pb2.VerifySignatureResponse:
        self.calls.append(request)
        if self.refusal is not None:
            raise self.refusal
        return self.verified

    async def AuthenticateDevice(self, request: Any, **call_options: Any) -> licence_pb2.Device:
        self.calls.append(request)
        if self.refusal is not None:
            raise self.refusal
        return licence_pb2.Device(biz_name="biz1", model_id="m1", sn=request.sn)


class Client:
    """One connection's session, and what it was sent."""

    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.session = Session(outbound_limit=100)
        self.sent: list[dict[str, Any]] = []
        self._n = 0

    async def call(self, cmd: str, **params: Any) -> dict[str, Any]:
        self._n += 1
        return await self.frame(json.dumps({"cmd": cmd, "req_id": f"r{self._n}", "params": params}))

    async def frame(self, text: str) -> dict[str, Any]:
        await self.commands.handle(self.session, text)
        item = self.session._outbox.get_nowait()
        assert isinstance(item, str)
        return dict(json.loads(item))


USER = {"uid": "alice", "biz_name": "biz1", "sub_biz": "app1", "workspace_id": "ws1", "sign": "c2ln"}


@pytest.fixture
def licence() -> FakeLicence:
    return FakeLicence()


@pytest.fixture
def table() -> SessionTable:
    return SessionTable()


@pytest.fixture
def commands(licence: FakeLicence, table: SessionTable) -> Commands:
    return Commands(
        licence,  # type: ignore[arg-type]
        table,
        ConnectThrottle(limit=5, window_s=60),
        NoOpTracer(),
        licence_timeout_s=1,
        ice_servers=IceServerGrant(CLIENT_ICE, clock=lambda: NOW_MS / 1000),
        now_ms=lambda: NOW_MS,
    )


CLIENT_ICE = ClientIceSettings(
    ice_servers=[IceServerSettings(urls=["stun:stun.example.org:3478"])],
    turn=TurnRestSettings(urls=["turn:turn.example.org:3478"], secret=SecretStr("turn-secret")),
)


def ice_servers_for(client: str) -> list[dict[str, Any]]:
    """What coturn's use-auth-secret mode accepts: `<expiry>:<client>` signed with the shared secret."""
    username = f"{NOW_MS // 1000 + 86_400}:{client}"
    credential = base64.b64encode(hmac.new(b"turn-secret", username.encode(), hashlib.sha1).digest()).decode()
    return [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478"],
            "username": username,
            "credential": credential,
        },
    ]


async def test_a_user_connects_with_a_verified_signature(
    commands: Commands, licence: FakeLicence, table: SessionTable
) -> None:
    client = Client(commands)
    answer = await client.call("connect", **USER)
    assert answer == {
        "req_id": "r1",
        "code": 0,
        "msg": "ok",
        "data": {
            "session_id": client.session.id,
            "uid": "alice",
            "biz_name": "biz1",
            "expire_time_ms": NOW_MS + 60_000,
            "ice_servers": ice_servers_for("alice"),
        },
    }
    assert licence.calls == [
        licence_pb2.VerifySignatureRequest(biz_name="biz1", uid="alice", signature="c2ln")
    ]
    assert client.session.identity == User(biz_name="biz1", uid="alice", app_id="app1", workspace_id="ws1")
    assert table.of_user("biz1", "alice") == [client.session]
    client.session.release()


async def test_a_device_connects_with_its_secret(commands: Commands, table: SessionTable) -> None:
    client = Client(commands)
    answer = await client.call("connect", sn="p_door", device_secret="s3cret")
    assert answer["code"] == 0
    assert answer["data"] == {
        "session_id": client.session.id,
        "sn": "p_door",
        "biz_name": "biz1",
        "ice_servers": ice_servers_for("p_door"),
    }
    assert client.session.identity == Device(biz_name="biz1", sn="p_door", model_id="m1")
    assert table.of_device("p_door") == [client.session]


async def test_a_refused_signature_answers_the_licence_services_code(
    commands: Commands, licence: FakeLicence, table: SessionTable
) -> None:
    licence.refusal = rpc_error(SIGNATURE_EXPIRED())
    answer = await Client(commands).call("connect", **USER)
    assert (answer["code"], answer["reason"], answer["msg"]) == (
        -102,
        "SIGNATURE_EXPIRED",
        "the signature has expired",
    )
    assert len(table) == 0


async def test_a_sub_biz_other_than_the_signing_apps_is_refused(
    commands: Commands, table: SessionTable
) -> None:
    answer = await Client(commands).call("connect", **{**USER, "sub_biz": "another_app"})
    assert (answer["code"], answer["reason"]) == (-102, "SIGNATURE_WRONG_APP")
    answer = await Client(commands).call("connect", **{**USER, "workspace_id": "another_ws"})
    assert (answer["code"], answer["reason"]) == (-102, "SIGNATURE_WRONG_APP")
    assert len(table) == 0


async def test_repeated_failures_are_refused_without_asking_the_licence_service(
    commands: Commands, licence: FakeLicence
) -> None:
    licence.refusal = rpc_error(DEVICE_UNAUTHENTICATED())
    for _ in range(5):
        assert (await Client(commands).call("connect", sn="p_door", device_secret="guess"))["code"] == 9800105
    answer = await Client(commands).call("connect", sn="p_door", device_secret="guess")
    assert (answer["code"], answer["reason"]) == (-91006, "CONNECT_THROTTLED")
    assert 59_000 < answer["data"]["retry_after_ms"] <= 60_000
    assert len(licence.calls) == 5
    # Another device, and users, are not affected.
    licence.refusal = None
    assert (await Client(commands).call("connect", sn="p_window", device_secret="s"))["code"] == 0


async def test_an_unavailable_licence_service_does_not_count_against_the_client(
    commands: Commands, licence: FakeLicence
) -> None:
    licence.refusal = rpc_error(UNAVAILABLE())
    for _ in range(7):
        assert (await Client(commands).call("connect", **USER))["code"] == -90014
    assert len(licence.calls) == 7


async def test_a_licence_service_that_does_not_answer_in_time_is_101(
    commands: Commands, licence: FakeLicence
) -> None:
    licence.refusal = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded"
    )
    answer = await Client(commands).call("connect", **USER)
    assert (answer["code"], answer["reason"]) == (-101, "CONNECT_TIMEOUT")


async def test_only_connect_and_ping_come_before_connect(commands: Commands) -> None:
    client = Client(commands)
    answer = await client.call("disconnect")
    assert (answer["req_id"], answer["code"], answer["reason"]) == ("r1", -91004, "NOT_CONNECTED")
    answer = await client.call("ping")
    assert answer == {"req_id": "r2", "code": 0, "msg": "ok", "data": {"ts": NOW_MS}}


async def test_unknown_commands_and_bad_params_are_answered_with_their_codes(commands: Commands) -> None:
    client = Client(commands)
    assert (await client.call("create_rooom"))["code"] == -91002
    assert (await client.call("connect", uid="alice"))["code"] == -91003
    assert (await client.call("connect", sn=5, device_secret="x"))["code"] == -91003
    answer = await client.frame("{not json")
    assert (answer["req_id"], answer["code"]) == (None, -91001)
    assert not client.session.closing


async def test_a_second_connect_on_one_connection_is_refused(commands: Commands) -> None:
    client = Client(commands)
    assert (await client.call("connect", sn="p_door", device_secret="s"))["code"] == 0
    assert (await client.call("connect", sn="p_door", device_secret="s"))["code"] == -91005


async def test_disconnect_answers_then_closes_normally(commands: Commands, table: SessionTable) -> None:
    client = Client(commands)
    await client.call("connect", sn="p_door", device_secret="s")
    answer = await client.call("disconnect")
    assert (answer["code"], answer["data"]) == (0, {})
    assert client.session.close_request is not None
    assert (client.session.close_request.code, client.session.close_request.reason) == (1000, "disconnect")
    assert len(table) == 0


async def test_an_unexpected_failure_is_an_internal_error_answer(
    commands: Commands, licence: FakeLicence
) -> None:
    async def broken(request: Any, **call_options: Any) -> None:
        raise KeyError("bug")

    licence.AuthenticateDevice = broken  # type: ignore[method-assign]
    answer = await Client(commands).call("connect", sn="p_door", device_secret="s")
    assert (answer["code"], answer["reason"]) == (-90013, "INTERNAL")
