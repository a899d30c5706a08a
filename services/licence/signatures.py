"""Call signatures, byte-compatible with the mPaaS signing code customers already run.

002 section 4 (安全加签) defines

    sign = Base64(RSA private-key encryption with PKCS#1 v1.5 padding of
                  UTF-8(bizName + appId + workspaceId + uid + expireTime))

with expireTime in epoch milliseconds, and section 5.3 adds temporary signatures valid 24 hours, 3 days or
7 days.

The seed's Java code encrypts with `Cipher.getInstance("RSA")` ("RSA/ECB/PKCS1Padding") initialised with
a *private* key in ENCRYPT_MODE. Java then pads with PKCS#1 v1.5 block type 1 (00 01 FF..FF 00 plaintext)
and applies the private exponent: an RSASSA-PKCS1-v1_5 signature of the raw plaintext, without the
DigestInfo a signature over a hash carries. `openssl pkeyutl -sign` with no digest option (and the older
`openssl rsautl -sign`) do the same. Type-1 padding has no randomness, so Java, OpenSSL and Parley make
identical bytes from one key and plaintext; the tests check all three.

Parley signs with `cryptography`'s PKCS1v15 padding and `NoDigestInfo` (cryptography 47 and later),
which runs OpenSSL's RSA, blinding included: no RSA arithmetic is written here. Verification
recovers the plaintext with the public key and checks it piece by piece, so a failure says why.

Reading the plaintext back. It is a bare concatenation, so it is cut at known places: the app's own
bizName + appId + workspaceId is the prefix, the last 13 bytes are expireTime, and what lies between is
the uid. expireTime is exactly 13 digits for every instant from 2001-09-09 to 2286-11-20, so Parley
signs only expireTimes in that span. A fixed width matters: with "13 or more" digits, a signature for uid
`user_1` would also read as uid `user_` with an expireTime ten times larger, centuries away.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from services.core.errors import INVALID_ARGUMENT
from services.core.shared_errors import SIGNATURE_WRONG_APP
from services.licence.errors import (
    SIGNATURE_EXPIRED,
    SIGNATURE_MALFORMED,
    SIGNATURE_WRONG_UID,
)
from services.licence.identifiers import validate_uid

EXPIRE_TIME_DIGITS = 13
MIN_EXPIRE_TIME_MS = 10 ** (EXPIRE_TIME_DIGITS - 1)
MAX_EXPIRE_TIME_MS = 10**EXPIRE_TIME_DIGITS - 1

# PKCS#1 v1.5 type-1 padding takes at least 11 bytes of the modulus: 00 01, eight FF, 00.
_PADDING_OVERHEAD_BYTES = 11

# 002 section 5.3: the console's temporary signatures last 24 hours, 3 days or 7 days.
TEMPORARY_TTLS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7),
}


@dataclass(frozen=True)
class TemporarySignature:
    signature: str
    expire_time_ms: int


def build_plaintext(biz_name: str, app_id: str, workspace_id: str, uid: str, expire_time_ms: int) -> bytes:
    validate_uid(uid)
    if not MIN_EXPIRE_TIME_MS <= expire_time_ms <= MAX_EXPIRE_TIME_MS:
        raise INVALID_ARGUMENT(
            f"expireTime must be epoch milliseconds of {EXPIRE_TIME_DIGITS} digits, got {expire_time_ms}"
        )
    return f"{biz_name}{app_id}{workspace_id}{uid}{expire_time_ms}".encode()


def sign(
    private_key: rsa.RSAPrivateKey,
    biz_name: str,
    app_id: str,
    workspace_id: str,
    uid: str,
    expire_time_ms: int,
) -> str:
    plaintext = build_plaintext(biz_name, app_id, workspace_id, uid, expire_time_ms)
    capacity = _modulus_bytes(private_key.key_size) - _PADDING_OVERHEAD_BYTES
    if len(plaintext) > capacity:
        raise INVALID_ARGUMENT(
            f"bizName + appId + workspaceId + uid + expireTime is {len(plaintext)} bytes; "
            f"a {private_key.key_size}-bit key signs at most {capacity}"
        )
    return base64.b64encode(private_key.sign(plaintext, PKCS1v15(), NoDigestInfo())).decode("ascii")


def parse_ttl(ttl: str) -> timedelta:
    try:
        return TEMPORARY_TTLS[ttl]
    except KeyError:
        raise INVALID_ARGUMENT(
            f"a temporary signature lasts {', '.join(TEMPORARY_TTLS)}; got {ttl!r}"
        ) from None


def sign_temporary(
    private_key: rsa.RSAPrivateKey,
    *,
    biz_name: str,
    app_id: str,
    workspace_id: str,
    uid: str,
    ttl: str,
    now_ms: int,
) -> TemporarySignature:
    expire_time_ms = now_ms + parse_ttl(ttl) // timedelta(milliseconds=1)
    signature = sign(private_key, biz_name, app_id, workspace_id, uid, expire_time_ms)
    return TemporarySignature(signature, expire_time_ms)


def verify(
    public_key: rsa.RSAPublicKey,
    signature_b64: str,
    *,
    biz_name: str,
    app_id: str,
    workspace_id: str,
    uid: str,
    now_ms: int,
) -> int:
    """The signature's expireTime (epoch ms) if it admits `uid` to this app now.

    Otherwise a ParleyError whose reason says which check failed.
    """
    validate_uid(uid)
    plaintext = _recover_plaintext(public_key, signature_b64)

    expire_digits = plaintext[-EXPIRE_TIME_DIGITS:]
    if len(expire_digits) < EXPIRE_TIME_DIGITS or not expire_digits.isdigit():
        raise SIGNATURE_MALFORMED(f"the signed text does not end in a {EXPIRE_TIME_DIGITS}-digit expireTime")
    app_prefix = f"{biz_name}{app_id}{workspace_id}".encode()
    if not hmac.compare_digest(plaintext[: len(app_prefix)], app_prefix):
        raise SIGNATURE_WRONG_APP("the signature was made for another bizName, appId or workspaceId")
    signed_uid = plaintext[len(app_prefix) : -EXPIRE_TIME_DIGITS]
    if not hmac.compare_digest(signed_uid, uid.encode()):
        raise SIGNATURE_WRONG_UID(f"the signature was not made for uid {uid}")
    expire_time_ms = int(expire_digits)
    if expire_time_ms <= now_ms:
        raise SIGNATURE_EXPIRED(f"the signature expired at {_iso(expire_time_ms)}")
    return expire_time_ms


def _recover_plaintext(public_key: rsa.RSAPublicKey, signature_b64: str) -> bytes:
    # openssl's base64 wraps lines at 64 characters; line breaks are not part of a signature.
    compact = "".join(signature_b64.split())
    try:
        signature = base64.b64decode(compact, validate=True)
    # binascii.Error for a bad alphabet or length, ValueError for characters outside ASCII.
    except (binascii.Error, ValueError):
        raise SIGNATURE_MALFORMED("the signature is not Base64") from None
    expected = _modulus_bytes(public_key.key_size)
    if len(signature) != expected:
        raise SIGNATURE_MALFORMED(f"the signature is {len(signature)} bytes; this app's key makes {expected}")
    try:
        return public_key.recover_data_from_signature(signature, PKCS1v15(), NoDigestInfo())
    except InvalidSignature:
        raise SIGNATURE_MALFORMED(
            "the signature does not decrypt with this app's public key: made with another key, or damaged"
        ) from None


def _modulus_bytes(key_size_bits: int) -> int:
    return (key_size_bits + 7) // 8


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
