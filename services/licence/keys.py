"""RSA key pairs of call apps, in the forms the customer and the database hold them.

The customer receives the private key as Base64 of PKCS#8 DER, the form the seed's Java code (002
section 4, `getPrivateKey`) decodes and gives to `PKCS8EncodedKeySpec`. Parley keeps the public key as
Base64 of SubjectPublicKeyInfo DER (what Java's `X509EncodedKeySpec` and `openssl pkey -pubin` read), and
the private key only sealed by a `MasterKey`, so a copy of the database alone signs nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.core.errors import INVALID_ARGUMENT
from services.core.sealing import SealingKey
from services.licence.errors import PRIVATE_KEY_UNREADABLE

KEY_SIZE_BITS = 2048
PUBLIC_EXPONENT = 65537


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE_BITS)


def export_private_key(private_key: rsa.RSAPrivateKey) -> str:
    """Base64 of PKCS#8 DER, unencrypted: the `key` the customer's signing code loads."""
    return _b64(_pkcs8_der(private_key))


def export_public_key(public_key: rsa.RSAPublicKey) -> str:
    """Base64 of SubjectPublicKeyInfo DER."""
    return _b64(
        public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def load_private_key(encoded: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_der_private_key(base64.b64decode(encoded, validate=True), password=None)
    # TypeError: the key is encrypted and wants a password.
    except (binascii.Error, ValueError, TypeError) as error:
        raise INVALID_ARGUMENT("the private key is not Base64 of an unencrypted DER private key") from error
    if not isinstance(key, rsa.RSAPrivateKey):
        raise INVALID_ARGUMENT("the private key is not an RSA key")
    return key


def load_public_key(encoded: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise INVALID_ARGUMENT("the public key is not Base64 of SubjectPublicKeyInfo DER") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise INVALID_ARGUMENT("the public key is not an RSA key")
    return key


class MasterKey:
    """Seals app private keys for storage (`services.core.sealing.SealingKey`, envelope `v1:...`).

    The app id is the associated data: a sealed key copied onto another app's row does not open there.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = SealingKey(secret, purpose="licence/app-private-key", unreadable=PRIVATE_KEY_UNREADABLE)

    def seal(self, private_key: rsa.RSAPrivateKey, *, app_id: str) -> str:
        return self._key.seal(_pkcs8_der(private_key), context=app_id)

    def open(self, envelope: str, *, app_id: str) -> rsa.RSAPrivateKey:
        der = self._key.open(envelope, context=app_id)
        # Only seal() makes envelopes, from RSA keys, and the GCM tag vouches that this is one of them.
        return cast(rsa.RSAPrivateKey, serialization.load_der_private_key(der, password=None))


def _pkcs8_der(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
