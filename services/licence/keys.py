"""RSA key pairs of call apps, in the forms the customer and the database hold them.

The customer receives the private key as Base64 of PKCS#8 DER, the form the seed's Java code (002
section 4, `getPrivateKey`) decodes and gives to `PKCS8EncodedKeySpec`. Parley keeps the public key as
Base64 of SubjectPublicKeyInfo DER (what Java's `X509EncodedKeySpec` and `openssl pkey -pubin` read), and
the private key only sealed by a `MasterKey`, so a copy of the database alone signs nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.core.errors import INVALID_ARGUMENT
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
    """Seals app private keys for storage: AES-256-GCM under a key derived from the master secret.

    The envelope is `v1:<Base64 nonce>:<Base64 ciphertext and tag>`. The version names both the format
    and the HKDF `info`, so a later scheme can read old rows and derive an unrelated key. The app id is
    the associated data: a sealed key copied onto another app's row does not open there.
    """

    VERSION = "v1"
    MIN_SECRET_BYTES = 32
    NONCE_BYTES = 12

    def __init__(self, secret: bytes) -> None:
        # HKDF extracts from a secret that is already random; it does not stretch a password.
        if len(secret) < self.MIN_SECRET_BYTES:
            raise ValueError(f"the master secret must be at least {self.MIN_SECRET_BYTES} random bytes")
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"parley/licence/app-private-key/{self.VERSION}".encode(),
        ).derive(secret)
        self._aead = AESGCM(derived)

    def seal(self, private_key: rsa.RSAPrivateKey, *, app_id: str) -> str:
        der = _pkcs8_der(private_key)
        # A random 96-bit nonce is safe for far more than the 2^32 seals one key may do: apps are few.
        nonce = os.urandom(self.NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, der, app_id.encode("utf-8"))
        return ":".join((self.VERSION, _b64(nonce), _b64(sealed)))

    def open(self, envelope: str, *, app_id: str) -> rsa.RSAPrivateKey:
        version, _, rest = envelope.partition(":")
        if version != self.VERSION:
            raise PRIVATE_KEY_UNREADABLE(f"unknown private key envelope version {version!r}")
        try:
            nonce_b64, sealed_b64 = rest.split(":")
            der = self._aead.decrypt(
                base64.b64decode(nonce_b64, validate=True),
                base64.b64decode(sealed_b64, validate=True),
                app_id.encode("utf-8"),
            )
        except (ValueError, binascii.Error, InvalidTag) as error:
            raise PRIVATE_KEY_UNREADABLE() from error
        # Only seal() makes envelopes, from RSA keys, and the GCM tag vouches that this is one of them.
        return cast(rsa.RSAPrivateKey, serialization.load_der_private_key(der, password=None))


def _pkcs8_der(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
