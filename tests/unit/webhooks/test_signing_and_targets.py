"""Standard Webhooks signatures with rotation, and which addresses the SSRF guard refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.core.ssrf import TargetGuard
from services.webhooks.signing import SigningSecrets, new_secret, signed_headers

BODY = b'{"bizRequestId":"e1","eventCode":1}'


def verifies(secret: str, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(BODY, headers)
    except WebhookVerificationError:
        return False
    return True


def test_a_signature_verifies_with_the_apps_secret_and_not_another() -> None:
    now = datetime.now(UTC)
    secrets = SigningSecrets(new_secret())
    headers = signed_headers(secrets, "e1", BODY, now)
    assert headers["webhook-id"] == "e1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert verifies(secrets.current, headers)
    assert not verifies(new_secret(), headers)
    assert not verifies(secrets.current, {**headers, "webhook-id": "e2"})


def test_after_rotation_the_old_secret_signs_beside_the_new_for_24_hours() -> None:
    now = datetime.now(UTC)
    old = SigningSecrets(new_secret())
    rotated = old.rotated(now)
    assert rotated.previous == old.current and rotated.current != old.current
    headers = signed_headers(rotated, "e1", BODY, now)
    assert len(headers["webhook-signature"].split()) == 2
    assert verifies(old.current, headers) and verifies(rotated.current, headers)
    # A day later only the new one signs (checked by what is signed, not by verifying an old timestamp).
    later = now + timedelta(hours=24, seconds=1)
    assert rotated.active(later) == [rotated.current]
    assert rotated.active(now + timedelta(hours=23)) == [rotated.current, old.current]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "::",
    ],
)
def test_private_loopback_link_local_cgnat_multicast_and_metadata_addresses_are_refused(address: str) -> None:
    assert TargetGuard().refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert TargetGuard().refusal(address) is None


def test_an_allow_listed_network_is_allowed_and_nothing_beside_it() -> None:
    guard = TargetGuard(["127.0.0.1/32", "10.1.0.0/16"])
    assert guard.refusal("127.0.0.1") is None
    assert guard.refusal("10.1.2.3") is None
    assert guard.refusal("127.0.0.2") is not None
    assert guard.refusal("10.2.0.1") is not None


def test_the_signature_example_in_docs_webhooks_md_is_right() -> None:
    body = (
        b'{"bizRequestId":"4b1f0d7e-2f0a-4f7e-9a53-8e5f2c7a1d10","uid":"bob","bizName":"b_1a2b3c",'
        b'"appId":"app1","workspaceId":"default","roomId":"r_9f8e7d","eventCode":3,"time":1764979200123,'
        b'"exitType":1}'
    )
    headers = signed_headers(
        SigningSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "4b1f0d7e-2f0a-4f7e-9a53-8e5f2c7a1d10",
        body,
        datetime.fromtimestamp(1764979200, UTC),
    )
    assert headers == {
        "webhook-id": "4b1f0d7e-2f0a-4f7e-9a53-8e5f2c7a1d10",
        "webhook-timestamp": "1764979200",
        "webhook-signature": "v1,MQvMV9eUvtk5SEJYdyxA3J5ZYcMS30lo03P0ORZ6ulk=",
    }
