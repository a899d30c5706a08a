"""The licence service as operators and devices use it: through the gateway's HTTP API and the CLI,
with a real licence gRPC server, a real Tansu broker and a SQLite database; and across a kill -9."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from parley.billing.v1 import events_pb2 as billing_events
from parley.licence.v1 import licence_pb2, licence_pb2_grpc

from services.core.config import ServiceName
from services.core.errors import from_rpc_error
from services.core.topics import Topic
from tests.testing import Instance, publish_fact, start_platform


@dataclass(frozen=True)
class Running:
    url: str
    licence_address: str
    kafka: str


@pytest.fixture(scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """The licence service and a gateway in this process, shared by the tests of this module (each test
    makes an app of its own)."""
    async with start_platform(
        tmp_path_factory.mktemp("licence"), ServiceName.LICENCE, ServiceName.GATEWAY
    ) as platform:
        yield Running(platform.http_url, platform["licence"].grpc_address, platform.kafka)


@pytest.fixture
def gateway_url(running: Running) -> str:
    return running.url


def parley(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True, timeout=60
    )


def openssl_sign(private_key_b64: str, plaintext: str, folder: Path) -> str:
    """Sign outside Parley, as a customer's backend would: `openssl pkeyutl -sign`, no digest."""
    key = serialization.load_der_private_key(base64.b64decode(private_key_b64), password=None)
    pem = folder / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (folder / "plain.txt").write_text(plaintext)
    signed = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(pem), "-in", str(folder / "plain.txt")],
        capture_output=True,
        check=True,
    )
    return base64.b64encode(signed.stdout).decode()


async def test_a_signature_made_with_openssl_verifies_and_tampered_ones_say_why(
    gateway_url: str, tmp_path: Path
) -> None:
    created = await asyncio.to_thread(parley, "app", "create", "--name", "Doorbells", "--url", gateway_url)
    assert created.returncode == 0, created.stderr
    app = json.loads(created.stdout)
    assert set(app) == {"bizName", "appId", "workspaceId", "privateKey"}
    # The operator's 查看密钥 answers the same key.
    revealed = await asyncio.to_thread(
        parley, "app", "reveal-key", "--biz-name", app["bizName"], "--url", gateway_url
    )
    assert revealed.returncode == 0, revealed.stderr
    assert json.loads(revealed.stdout) == app

    expire = int(time.time() * 1000) + 3_600_000
    prefix = app["bizName"] + app["appId"] + app["workspaceId"]
    good = openssl_sign(app["privateKey"], f"{prefix}alice{expire}", tmp_path)

    def verify(uid: str, signature: str) -> subprocess.CompletedProcess[str]:
        args = [
            "verify",
            "--biz-name",
            app["bizName"],
            "--uid",
            uid,
            "--signature",
            signature,
            "--url",
            gateway_url,
        ]
        return parley(*args)

    assert (await asyncio.to_thread(verify, "alice", good)).returncode == 0

    tampered = bytearray(base64.b64decode(good))
    tampered[10] ^= 0x01
    wrong_byte = await asyncio.to_thread(verify, "alice", base64.b64encode(bytes(tampered)).decode())
    assert wrong_byte.returncode == 1 and "SIGNATURE_MALFORMED" in wrong_byte.stderr

    other_uid = await asyncio.to_thread(verify, "bob", good)
    assert other_uid.returncode == 1 and "SIGNATURE_WRONG_UID" in other_uid.stderr

    past = openssl_sign(app["privateKey"], f"{prefix}alice{int(time.time() * 1000) - 1000}", tmp_path)
    expired = await asyncio.to_thread(verify, "alice", past)
    assert expired.returncode == 1 and "SIGNATURE_EXPIRED" in expired.stderr

    issued = await asyncio.to_thread(
        parley, "sign", "--biz-name", app["bizName"], "--uid", "carol", "--ttl", "3d", "--url", gateway_url
    )
    signature = json.loads(issued.stdout)
    assert 3 * 86_400_000 - 60_000 < signature["expireTime"] - time.time() * 1000 <= 3 * 86_400_000
    assert (await asyncio.to_thread(verify, "carol", signature["signature"])).returncode == 0


async def test_a_pool_of_n_activates_exactly_n_of_2n_racing_devices(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        app = (await client.post("/v1/apps", json={"name": "Race"})).json()
        biz = app["bizName"]
        added = await client.post(
            f"/v1/apps/{biz}/licences", json={"modelId": "M1", "type": "video", "count": 4}
        )
        assert added.status_code == 201, added.text
        answers = await asyncio.gather(
            *(
                client.post(
                    f"/v1/apps/{biz}/devices", json={"modelId": "M1", "sn": f"P1_dev{i}", "type": "video"}
                )
                for i in range(8)
            )
        )
        activated = [answer.json()["sn"] for answer in answers if answer.status_code == 200]
        refused = [answer.json()["reason"] for answer in answers if answer.status_code != 200]
        assert len(set(activated)) == 4
        assert refused == ["LICENCE_POOL_EXHAUSTED"] * 4
        pools = (await client.get(f"/v1/apps/{biz}/licences")).json()
        assert pools[0]["used"] == 4 and pools[0]["total"] == 4


async def test_a_ticket_is_good_once_and_only_for_an_activated_device(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        biz = (await client.post("/v1/apps", json={"name": "Tickets"})).json()["bizName"]
        await client.post(f"/v1/apps/{biz}/licences", json={"modelId": "M1", "type": "audio", "count": 1})
        never = await client.post(f"/v1/apps/{biz}/devices/P1_ghost/tickets")
        assert never.json()["reason"] == "DEVICE_NOT_ACTIVATED"

        await client.post(f"/v1/apps/{biz}/devices", json={"modelId": "M1", "sn": "P1_cam", "type": "audio"})
        ticket = (await client.post(f"/v1/apps/{biz}/devices/P1_cam/tickets")).json()["snTicket"]
        first = await client.post("/v1/devices/P1_cam/registration", json={"snTicket": ticket})
        assert first.status_code == 201 and first.json()["deviceSecret"]
        again = await client.post("/v1/devices/P1_cam/registration", json={"snTicket": ticket})
        assert again.json()["code"] == -10008
        assert (await client.get("/v1/devices/P1_cam/registration")).json()["registered"] is True


async def test_paging_authorised_users_returns_each_exactly_once(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        biz = (await client.post("/v1/apps", json={"name": "Paging"})).json()["bizName"]
        await client.post(f"/v1/apps/{biz}/licences", json={"modelId": "M1", "type": "video", "count": 1})
        await client.post(f"/v1/apps/{biz}/devices", json={"modelId": "M1", "sn": "P1_door", "type": "video"})
        ticket = (await client.post(f"/v1/apps/{biz}/devices/P1_door/tickets")).json()["snTicket"]
        secret = (await client.post("/v1/devices/P1_door/registration", json={"snTicket": ticket})).json()[
            "deviceSecret"
        ]
        for i in range(23):
            answer = await client.put(
                f"/v1/apps/{biz}/devices/P1_door/users/user{i:02d}", json={"authorised": True}
            )
            assert answer.status_code == 200, answer.text
        seen: list[str] = []
        offset = 0
        while True:
            page = await client.get(
                "/v1/devices/P1_door/users",
                params={"offset": offset, "limit": 10},
                headers={"authorization": f"Device {secret}"},
            )
            body = page.json()
            assert body["total"] == 23 and len(body["users"]) <= 10
            if not body["users"]:
                break
            seen += [user["openId"] for user in body["users"]]
            offset += len(body["users"])
        assert sorted(seen) == [f"user{i:02d}" for i in range(23)]
        wrong_secret = await client.get("/v1/devices/P1_door/users", headers={"authorization": "Device nope"})
        assert wrong_secret.status_code == 401


async def test_everything_survives_a_kill_9_of_the_licence_service(tmp_path: Path) -> None:
    async with start_platform(tmp_path, Instance(ServiceName.LICENCE, process=True)) as platform:
        stub = platform.licence
        app = await stub.CreateApp(licence_pb2.CreateAppRequest(name="Durable"), timeout=30)
        biz = app.app.biz_name
        await stub.AddLicences(
            licence_pb2.AddLicencesRequest(
                biz_name=biz, model_id="M1", type=licence_pb2.LICENCE_TYPE_VIDEO_CALL, count=2
            )
        )
        await stub.ActivateDevice(
            licence_pb2.ActivateDeviceRequest(
                biz_name=biz, model_id="M1", sn="P1_keep", type=licence_pb2.LICENCE_TYPE_VIDEO_CALL
            )
        )
        ticket = await stub.IssueSnTicket(licence_pb2.IssueSnTicketRequest(biz_name=biz, sn="P1_keep"))
        secret = await stub.RegisterDevice(
            licence_pb2.RegisterDeviceRequest(sn="P1_keep", sn_ticket=ticket.sn_ticket)
        )
        await stub.SetAuthorisation(
            licence_pb2.SetAuthorisationRequest(biz_name=biz, sn="P1_keep", open_id="owner", authorised=True)
        )
        signature = await stub.IssueSignature(
            licence_pb2.IssueSignatureRequest(biz_name=biz, uid="owner", ttl="24h")
        )

        await platform.kill(ServiceName.LICENCE)
        await platform.restart(ServiceName.LICENCE)
        stub = platform.licence

        assert (await stub.GetApp(licence_pb2.GetAppRequest(biz_name=biz))).public_key == app.app.public_key
        await stub.VerifySignature(
            licence_pb2.VerifySignatureRequest(biz_name=biz, uid="owner", signature=signature.signature)
        )
        pools = (await stub.ListLicencePools(licence_pb2.ListLicencePoolsRequest(biz_name=biz))).pools
        assert [(pool.total, pool.used) for pool in pools] == [(2, 1)]
        assert (await stub.IsRegistered(licence_pb2.DeviceRequest(sn="P1_keep"))).registered
        await stub.AuthenticateDevice(
            licence_pb2.AuthenticateDeviceRequest(sn="P1_keep", device_secret=secret.device_secret)
        )
        users = await stub.ListAuthorisedUsers(licence_pb2.ListAuthorisedUsersRequest(sn="P1_keep", limit=10))
        assert [user.open_id for user in users.users] == ["owner"]


async def test_an_app_in_arrears_gets_minus_15_once_billing_says_so(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        biz = (await client.post("/v1/apps", json={"name": "Arrears"})).json()["bizName"]
        await client.post(f"/v1/apps/{biz}/licences", json={"modelId": "M1", "type": "video", "count": 1})
        await client.post(f"/v1/apps/{biz}/devices", json={"modelId": "M1", "sn": "P9_bell", "type": "video"})
        ticket = (await client.post(f"/v1/apps/{biz}/devices/P9_bell/tickets")).json()["snTicket"]
        await client.post("/v1/devices/P9_bell/registration", json={"snTicket": ticket})
        await client.put(f"/v1/apps/{biz}/devices/P9_bell/users/owner", json={"authorised": True})

    async with grpc.aio.insecure_channel(running.licence_address) as channel:
        licence = licence_pb2_grpc.LicenceServiceStub(channel)
        check = licence_pb2.CheckDeviceCallRequest(sn="P9_bell", open_id="owner")
        assert (await licence.CheckDeviceCall(check)).biz_name == biz

        in_arrears = billing_events.AccountStatusChanged(biz_name=biz, in_arrears=True)
        await publish_fact(running.kafka, Topic.BILLING, in_arrears, key=biz, source=ServiceName.BILLING)

        async with asyncio.timeout(60):
            while True:
                try:
                    await licence.CheckDeviceCall(check)
                except grpc.aio.AioRpcError as error:
                    assert from_rpc_error(error).code == -15
                    break
                await asyncio.sleep(0.2)


async def test_the_cli_takes_a_device_from_licence_to_its_users(running: Running) -> None:
    url = running.url
    biz = json.loads(
        (await asyncio.to_thread(parley, "app", "create", "--name", "Cli", "--url", url)).stdout
    )["bizName"]

    def cli(*args: str) -> object:
        result = parley(*args, "--url", url)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    pool = await asyncio.to_thread(
        cli, "licence", "add", "--biz-name", biz, "--model-id", "M1", "--type", "audio", "--count", "2"
    )
    assert pool == {"bizName": biz, "modelId": "M1", "type": "audio", "total": 2, "used": 0}
    activation = await asyncio.to_thread(
        cli, "device", "activate", "--biz-name", biz, "--model-id", "M1", "--sn", "P7_cli", "--type", "audio"
    )
    assert activation["newlyActivated"] is True
    ticket = await asyncio.to_thread(cli, "device", "ticket", "--biz-name", biz, "--sn", "P7_cli")
    registration = await asyncio.to_thread(
        cli, "device", "register", "--sn", "P7_cli", "--ticket", ticket["snTicket"]
    )
    assert registration["deviceSecret"]
    await asyncio.to_thread(
        cli, "device", "authorise", "--biz-name", biz, "--sn", "P7_cli", "--open-id", "ann"
    )
    users = await asyncio.to_thread(cli, "device", "users", "--sn", "P7_cli")
    assert [user["openId"] for user in users["users"]] == ["ann"] and users["total"] == 1
    reused = await asyncio.to_thread(
        parley, "device", "register", "--sn", "P7_cli", "--ticket", ticket["snTicket"], "--url", url
    )
    assert reused.returncode == 1 and "-10008" in reused.stderr
