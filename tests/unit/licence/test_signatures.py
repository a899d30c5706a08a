"""Signatures made by Parley, by the openssl command line and by the seed's Java code verify alike."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from services.core.errors import INVALID_ARGUMENT, ErrorKind, ParleyError
from services.core.shared_errors import SIGNATURE_WRONG_APP
from services.licence.errors import (
    SIGNATURE_EXPIRED,
    SIGNATURE_MALFORMED,
    SIGNATURE_WRONG_UID,
    UID_INVALID,
)
from services.licence.keys import export_private_key, generate_private_key
from services.licence.signatures import build_plaintext, parse_ttl, sign, sign_temporary, verify

BIZ_NAME = "demo_biz"
APP_ID = "ALIPUB059F038311550"
WORKSPACE_ID = "default"
UID = "user_1"
NOW_MS = 1_763_700_000_000
EXPIRE_MS = NOW_MS + 5 * 60 * 1000

# The seed's signing code (002 section 4) unchanged, in a class with a main that takes the key and the
# five fields from argv.
SEED_JAVA = """
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import javax.crypto.Cipher;

public class SeedSign {
    public static void main(String[] args) throws Exception {
        String key = args[0];
        String encryptStr = args[1] + args[2] + args[3] + args[4] + args[5];
        String sign = encryptByPrivate(encryptStr, getPrivateKey(key));
        System.out.print(sign);
    }

    //RSA 私钥加密
    public static String encryptByPrivate(String content, PrivateKey privateKey) throws
    Exception {
        Cipher cipher = Cipher.getInstance("RSA");
        cipher.init(Cipher.ENCRYPT_MODE, privateKey);
        return
    Base64.getEncoder().encodeToString(cipher.doFinal(content.getBytes("UTF-8")));
    }

    //将 Base64 编码后的 RSA 私钥字符串转成 PrivateKey 实例
    public static PrivateKey getPrivateKey(String privateKey) throws Exception {
        byte[] keyBytes = Base64.getDecoder().decode(privateKey);
        PKCS8EncodedKeySpec keySpec = new PKCS8EncodedKeySpec(keyBytes);
        KeyFactory keyFactory = KeyFactory.getInstance("RSA");
        return keyFactory.generatePrivate(keySpec);
    }
}
"""


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def other_private_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


def verify_now(public_key: rsa.RSAPublicKey, signature: str, *, uid: str = UID, now_ms: int = NOW_MS) -> int:
    return verify(
        public_key,
        signature,
        biz_name=BIZ_NAME,
        app_id=APP_ID,
        workspace_id=WORKSPACE_ID,
        uid=uid,
        now_ms=now_ms,
    )


def assert_fails(
    kind: ErrorKind, public_key: rsa.RSAPublicKey, signature: str, *, uid: str = UID, now_ms: int = NOW_MS
) -> None:
    with pytest.raises(ParleyError) as caught:
        verify_now(public_key, signature, uid=uid, now_ms=now_ms)
    assert caught.value.kind is kind, caught.value


def raw_signature(private_key: rsa.RSAPrivateKey, plaintext: bytes) -> str:
    return base64.b64encode(private_key.sign(plaintext, PKCS1v15(), NoDigestInfo())).decode()


def test_plaintext_is_the_seeds_concatenation() -> None:
    plaintext = build_plaintext(BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)
    assert plaintext == f"{BIZ_NAME}{APP_ID}{WORKSPACE_ID}{UID}{EXPIRE_MS}".encode()


def test_a_parley_signature_verifies_and_gives_its_expire_time(private_key: rsa.RSAPrivateKey) -> None:
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)
    assert verify_now(private_key.public_key(), signature) == EXPIRE_MS


def test_the_public_key_recovers_the_plaintext_itself(private_key: rsa.RSAPrivateKey) -> None:
    signature = base64.b64decode(sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS))
    recovered = private_key.public_key().recover_data_from_signature(signature, PKCS1v15(), NoDigestInfo())
    assert recovered == build_plaintext(BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command line is not installed")
@pytest.mark.parametrize(
    "command",
    [["openssl", "pkeyutl", "-sign"], ["openssl", "rsautl", "-sign"]],
    ids=["pkeyutl", "rsautl"],
)
def test_a_signature_made_by_openssl_verifies(
    private_key: rsa.RSAPrivateKey, tmp_path: Path, command: list[str]
) -> None:
    key_pem = tmp_path / "key.pem"
    key_pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    plaintext = tmp_path / "plaintext"
    plaintext.write_bytes(f"{BIZ_NAME}{APP_ID}{WORKSPACE_ID}{UID}{EXPIRE_MS}".encode())
    signed = subprocess.run(
        [*command, "-inkey", str(key_pem), "-in", str(plaintext)], check=True, capture_output=True
    ).stdout
    signature = base64.b64encode(signed).decode()

    assert verify_now(private_key.public_key(), signature) == EXPIRE_MS
    # Type-1 padding is deterministic: Parley must make the very same bytes.
    assert signature == sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)


@pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None,
    reason="no JDK (javac and java) to run the seed's Java signing code",
)
def test_a_signature_made_by_the_seeds_java_code_verifies(
    private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    source = tmp_path / "SeedSign.java"
    source.write_text(SEED_JAVA, encoding="utf-8")
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(tmp_path), str(source)], check=True)
    fields = [BIZ_NAME, APP_ID, WORKSPACE_ID, UID, str(EXPIRE_MS)]
    signature = subprocess.run(
        ["java", "-cp", str(tmp_path), "SeedSign", export_private_key(private_key), *fields],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert verify_now(private_key.public_key(), signature) == EXPIRE_MS
    assert signature == sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)


def test_a_signature_wrapped_over_lines_verifies(private_key: rsa.RSAPrivateKey) -> None:
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)
    wrapped = "\n".join(signature[i : i + 64] for i in range(0, len(signature), 64)) + "\n"
    assert verify_now(private_key.public_key(), wrapped) == EXPIRE_MS


@pytest.mark.parametrize("position", [0, 100, 255])
def test_a_changed_byte_is_malformed(private_key: rsa.RSAPrivateKey, position: int) -> None:
    signature = bytearray(base64.b64decode(sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)))
    signature[position] ^= 0x01
    assert_fails(SIGNATURE_MALFORMED, private_key.public_key(), base64.b64encode(signature).decode())


@pytest.mark.parametrize(
    "signature",
    ["not base64!", "", "QUJD", base64.b64encode(bytes(257)).decode(), "全角"],
    ids=["not-base64", "empty", "too-short", "too-long", "non-ascii"],
)
def test_what_is_not_a_signature_is_malformed(private_key: rsa.RSAPrivateKey, signature: str) -> None:
    assert_fails(SIGNATURE_MALFORMED, private_key.public_key(), signature)


def test_a_signature_by_another_apps_key_is_malformed(
    private_key: rsa.RSAPrivateKey, other_private_key: rsa.RSAPrivateKey
) -> None:
    signature = sign(other_private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)
    assert_fails(SIGNATURE_MALFORMED, private_key.public_key(), signature)


def test_signed_text_without_an_expire_time_is_malformed(private_key: rsa.RSAPrivateKey) -> None:
    signature = raw_signature(private_key, f"{BIZ_NAME}{APP_ID}{WORKSPACE_ID}{UID}".encode())
    assert_fails(SIGNATURE_MALFORMED, private_key.public_key(), signature)


@pytest.mark.parametrize(
    ("biz_name", "app_id", "workspace_id"),
    [
        ("other_biz", APP_ID, WORKSPACE_ID),
        (BIZ_NAME, "ALIPUB000000000000", WORKSPACE_ID),
        (BIZ_NAME, APP_ID, "w2"),
    ],
    ids=["bizName", "appId", "workspaceId"],
)
def test_a_signature_for_another_app_says_so(
    private_key: rsa.RSAPrivateKey, biz_name: str, app_id: str, workspace_id: str
) -> None:
    signature = sign(private_key, biz_name, app_id, workspace_id, UID, EXPIRE_MS)
    assert_fails(SIGNATURE_WRONG_APP, private_key.public_key(), signature)


def test_a_signature_for_another_uid_says_so(private_key: rsa.RSAPrivateKey) -> None:
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, "user_2", EXPIRE_MS)
    assert_fails(SIGNATURE_WRONG_UID, private_key.public_key(), signature)


@pytest.mark.parametrize("claimed_uid", ["user_", "user_11", "user"])
def test_a_uid_differing_only_in_digits_next_to_the_expire_time_is_another_uid(
    private_key: rsa.RSAPrivateKey, claimed_uid: str
) -> None:
    # "user_1" + "1763..." must not read as "user_" + "11763..." or as "user_11" + "763...".
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, "user_1", EXPIRE_MS)
    assert_fails(SIGNATURE_WRONG_UID, private_key.public_key(), signature, uid=claimed_uid)


@pytest.mark.parametrize("expire_ms", [NOW_MS - 1, NOW_MS, 1_000_000_000_000], ids=["past", "now", "2001"])
def test_an_expired_signature_says_so(private_key: rsa.RSAPrivateKey, expire_ms: int) -> None:
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, expire_ms)
    with pytest.raises(ParleyError) as caught:
        verify_now(private_key.public_key(), signature)
    assert caught.value.kind is SIGNATURE_EXPIRED
    assert caught.value.code == -102


def test_every_signature_failure_is_the_seeds_connect_failure_code() -> None:
    kinds = [SIGNATURE_MALFORMED, SIGNATURE_WRONG_APP, SIGNATURE_WRONG_UID, SIGNATURE_EXPIRED]
    assert {kind.code for kind in kinds} == {-102}
    assert len({kind.reason for kind in kinds}) == len(kinds)


@pytest.mark.parametrize("uid", ["", "user-1", "用户", "u" * 129, "user 1"])
def test_an_invalid_uid_is_refused_when_signing_and_verifying(
    private_key: rsa.RSAPrivateKey, uid: str
) -> None:
    with pytest.raises(ParleyError) as signing:
        sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, uid, EXPIRE_MS)
    assert signing.value.kind is UID_INVALID
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, EXPIRE_MS)
    assert_fails(UID_INVALID, private_key.public_key(), signature, uid=uid)


def test_the_longest_uid_signs_and_verifies(private_key: rsa.RSAPrivateKey) -> None:
    uid = "u" * 128
    signature = sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, uid, EXPIRE_MS)
    assert verify_now(private_key.public_key(), signature, uid=uid) == EXPIRE_MS


@pytest.mark.parametrize("expire_ms", [999_999_999_999, 10_000_000_000_000, -1])
def test_only_13_digit_expire_times_are_signed(private_key: rsa.RSAPrivateKey, expire_ms: int) -> None:
    with pytest.raises(ParleyError) as caught:
        sign(private_key, BIZ_NAME, APP_ID, WORKSPACE_ID, UID, expire_ms)
    assert caught.value.kind is INVALID_ARGUMENT


def test_a_plaintext_too_long_for_the_key_is_refused(private_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ParleyError) as caught:
        sign(private_key, "b" * 100, APP_ID, WORKSPACE_ID, "u" * 128, EXPIRE_MS)
    assert caught.value.kind is INVALID_ARGUMENT


@pytest.mark.parametrize(("ttl", "hours"), [("24h", 24), ("3d", 72), ("7d", 168)])
def test_temporary_signatures_last_the_consoles_periods(
    private_key: rsa.RSAPrivateKey, ttl: str, hours: int
) -> None:
    assert parse_ttl(ttl).total_seconds() == hours * 3600
    temporary = sign_temporary(
        private_key,
        biz_name=BIZ_NAME,
        app_id=APP_ID,
        workspace_id=WORKSPACE_ID,
        uid=UID,
        ttl=ttl,
        now_ms=NOW_MS,
    )
    assert temporary.expire_time_ms == NOW_MS + hours * 3_600_000
    last_valid_ms = temporary.expire_time_ms - 1
    assert (
        verify_now(private_key.public_key(), temporary.signature, now_ms=last_valid_ms)
        == temporary.expire_time_ms
    )
    assert_fails(
        SIGNATURE_EXPIRED, private_key.public_key(), temporary.signature, now_ms=temporary.expire_time_ms
    )


@pytest.mark.parametrize("ttl", ["1h", "24H", "", "7 d", "30d"])
def test_other_temporary_periods_are_refused(ttl: str) -> None:
    with pytest.raises(ParleyError) as caught:
        parse_ttl(ttl)
    assert caught.value.kind is INVALID_ARGUMENT
