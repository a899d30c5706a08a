"""App key pairs: the forms handed out and stored, and their sealing at rest."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.core.errors import INVALID_ARGUMENT, ParleyError
from services.licence.errors import PRIVATE_KEY_UNREADABLE
from services.licence.keys import (
    MasterKey,
    export_private_key,
    export_public_key,
    generate_private_key,
    load_private_key,
    load_public_key,
)

MASTER_SECRET = b"m" * 32
APP_ID = "ALIPUB059F038311550"

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command line is not installed"
)


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


def test_new_keys_are_rsa_2048_with_exponent_65537(private_key: rsa.RSAPrivateKey) -> None:
    assert private_key.key_size == 2048
    assert private_key.public_key().public_numbers().e == 65537


def test_keys_survive_export_and_load(private_key: rsa.RSAPrivateKey) -> None:
    loaded = load_private_key(export_private_key(private_key))
    assert loaded.private_numbers() == private_key.private_numbers()
    public = load_public_key(export_public_key(private_key.public_key()))
    assert public.public_numbers() == private_key.public_key().public_numbers()


@needs_openssl
def test_the_private_key_is_unencrypted_pkcs8_der(private_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    der = tmp_path / "key.der"
    der.write_bytes(base64.b64decode(export_private_key(private_key)))
    # `openssl pkcs8 -nocrypt` reads PKCS#8 PrivateKeyInfo only, not a PKCS#1 RSAPrivateKey.
    pem = subprocess.run(
        ["openssl", "pkcs8", "-inform", "DER", "-nocrypt", "-in", str(der)],
        check=True,
        capture_output=True,
    ).stdout
    reloaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(reloaded, rsa.RSAPrivateKey)
    assert reloaded.private_numbers() == private_key.private_numbers()


@needs_openssl
def test_the_public_key_is_subject_public_key_info_der(
    private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    der = tmp_path / "public.der"
    der.write_bytes(base64.b64decode(export_public_key(private_key.public_key())))
    subprocess.run(
        ["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(der), "-noout"],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("encoded", ["not base64!", "", base64.b64encode(b"not a key").decode()])
def test_what_is_not_a_key_is_refused(encoded: str) -> None:
    for load in (load_private_key, load_public_key):
        with pytest.raises(ParleyError) as caught:
            load(encoded)
        assert caught.value.kind is INVALID_ARGUMENT


def test_a_password_protected_private_key_is_refused(private_key: rsa.RSAPrivateKey) -> None:
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    )
    with pytest.raises(ParleyError) as caught:
        load_private_key(base64.b64encode(der).decode())
    assert caught.value.kind is INVALID_ARGUMENT


def test_keys_that_are_not_rsa_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private_der = ec_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_der = ec_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ParleyError) as private_error:
        load_private_key(base64.b64encode(private_der).decode())
    assert private_error.value.kind is INVALID_ARGUMENT
    with pytest.raises(ParleyError) as public_error:
        load_public_key(base64.b64encode(public_der).decode())
    assert public_error.value.kind is INVALID_ARGUMENT


def test_a_sealed_key_opens_for_its_app(private_key: rsa.RSAPrivateKey) -> None:
    master = MasterKey(MASTER_SECRET)
    envelope = master.seal(private_key, app_id=APP_ID)
    assert master.open(envelope, app_id=APP_ID).private_numbers() == private_key.private_numbers()
    # A new process with the same secret derives the same key.
    assert (
        MasterKey(MASTER_SECRET).open(envelope, app_id=APP_ID).private_numbers()
        == private_key.private_numbers()
    )


def test_the_envelope_is_versioned_with_a_fresh_96_bit_nonce(private_key: rsa.RSAPrivateKey) -> None:
    master = MasterKey(MASTER_SECRET)
    first, second = master.seal(private_key, app_id=APP_ID), master.seal(private_key, app_id=APP_ID)
    version, nonce, sealed = first.split(":")
    assert version == "v1"
    assert len(base64.b64decode(nonce)) == 12
    assert export_private_key(private_key) not in first
    assert base64.b64decode(sealed) != base64.b64decode(export_private_key(private_key))
    assert first.split(":")[1] != second.split(":")[1]


def tampered(envelope: str) -> str:
    version, nonce, sealed = envelope.split(":")
    data = bytearray(base64.b64decode(sealed))
    data[10] ^= 0x01
    return ":".join((version, nonce, base64.b64encode(data).decode()))


def with_short_nonce(envelope: str) -> str:
    version, _, sealed = envelope.split(":")
    return ":".join((version, base64.b64encode(b"short").decode(), sealed))


@pytest.mark.parametrize(
    ("make_envelope", "secret", "app_id"),
    [
        (lambda envelope: envelope, MASTER_SECRET, "ALIPUB000000000000"),
        (lambda envelope: envelope, b"x" * 32, APP_ID),
        (tampered, MASTER_SECRET, APP_ID),
        (lambda envelope: "v2" + envelope[2:], MASTER_SECRET, APP_ID),
        (lambda envelope: envelope.replace(":", "", 1), MASTER_SECRET, APP_ID),
        (lambda _: "v1:!!:!!", MASTER_SECRET, APP_ID),
        (with_short_nonce, MASTER_SECRET, APP_ID),
    ],
    ids=[
        "other-app",
        "other-master-secret",
        "tampered",
        "unknown-version",
        "no-separator",
        "not-base64",
        "bad-nonce",
    ],
)
def test_a_sealed_key_does_not_open_otherwise(
    private_key: rsa.RSAPrivateKey, make_envelope: Callable[[str], str], secret: bytes, app_id: str
) -> None:
    envelope = make_envelope(MasterKey(MASTER_SECRET).seal(private_key, app_id=APP_ID))
    with pytest.raises(ParleyError) as caught:
        MasterKey(secret).open(envelope, app_id=app_id)
    assert caught.value.kind is PRIVATE_KEY_UNREADABLE


def test_a_short_master_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        MasterKey(b"s" * 31)
