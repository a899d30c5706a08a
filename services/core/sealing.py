"""Secrets sealed at rest under a master key, and where that master key comes from.

A service that must keep a secret it shows or uses again (an app's private key in the licence service, an
app's webhook signing secret in the dispatcher) stores it sealed, so a copy of the database alone reveals
nothing. Each service has its own master key setting (`PARLEY_<SERVICE>__MASTER_KEY`), required in
production; in development a key is made once and kept in the data folder.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from services.core.config import Settings
from services.core.errors import ErrorKind, StartupError

MIN_SECRET_BYTES = 32


class SealingKey:
    """AES-256-GCM under a key derived from the master secret for one purpose.

    The envelope is `v1:<Base64 nonce>:<Base64 ciphertext and tag>`. The version names both the format
    and the HKDF `info` (`parley/<purpose>/v1`), so a later scheme can read old rows and derive an
    unrelated key, and one master secret used for two purposes gives two unrelated keys. The caller's
    `context` (the row's owner) is the associated data: an envelope copied onto another row does not open.
    """

    VERSION = "v1"
    NONCE_BYTES = 12

    def __init__(self, secret: bytes, *, purpose: str, unreadable: ErrorKind) -> None:
        # HKDF extracts from a secret that is already random; it does not stretch a password.
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the master secret must be at least {MIN_SECRET_BYTES} random bytes")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"parley/{purpose}/{self.VERSION}".encode()
        ).derive(secret)
        self._aead = AESGCM(derived)
        self._unreadable = unreadable

    @classmethod
    def is_envelope(cls, value: str) -> bool:
        return value.startswith(cls.VERSION + ":")

    def seal(self, plain: bytes, *, context: str) -> str:
        # A random 96-bit nonce is safe for far more than the 2^32 seals one key may do: secrets are few.
        nonce = os.urandom(self.NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain, context.encode("utf-8"))
        return ":".join((self.VERSION, _b64(nonce), _b64(sealed)))

    def open(self, envelope: str, *, context: str) -> bytes:
        """The plain bytes; the service's `unreadable` error for another key, context or a broken envelope."""
        version, _, rest = envelope.partition(":")
        if version != self.VERSION:
            # Never the value itself in the message: it may be a secret stored before sealing.
            raise self._unreadable("the stored value is not a sealed envelope of a known version")
        try:
            nonce_b64, sealed_b64 = rest.split(":")
            return self._aead.decrypt(
                base64.b64decode(nonce_b64, validate=True),
                base64.b64decode(sealed_b64, validate=True),
                context.encode("utf-8"),
            )
        except (ValueError, binascii.Error, InvalidTag) as error:
            raise self._unreadable() from error


def load_master_secret(
    settings: Settings, configured: SecretStr | None, *, setting: str, development_file: str
) -> bytes:
    """The master secret of the setting `setting` (its environment variable's name); in development
    without one, a secret kept in `development_file` of the data folder (made once)."""
    if configured is not None:
        try:
            secret = base64.b64decode(configured.get_secret_value(), validate=True)
        except binascii.Error:
            raise StartupError(f"{setting} is not Base64") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise StartupError(f"{setting} must hold at least {MIN_SECRET_BYTES} bytes")
        return secret
    if settings.environment != "development":
        raise StartupError(
            f"{setting} is required outside development "
            "(Base64 of 32 random bytes: `openssl rand -base64 32`)"
        )
    path = settings.data_dir / development_file
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once must not each write a different key.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return base64.b64decode(path.read_text().strip())
    except FileExistsError:
        return base64.b64decode(path.read_text().strip())
    except OSError as error:
        raise StartupError(f"cannot keep the development master key at {path}: {error.strerror}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
