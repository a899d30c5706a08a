"""Where the master key that seals app private keys comes from."""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from services.core.config import Settings
from services.core.errors import StartupError
from services.licence.keys import MasterKey

DEVELOPMENT_KEY_FILE = "licence-master.key"


def load_master_key(settings: Settings) -> MasterKey:
    """The configured key; in development without one, a key kept in the data folder (created once)."""
    configured = settings.licence.master_key
    if configured is not None:
        try:
            secret = base64.b64decode(configured.get_secret_value(), validate=True)
        except binascii.Error:
            raise StartupError("PARLEY_LICENCE__MASTER_KEY is not Base64") from None
        if len(secret) < MasterKey.MIN_SECRET_BYTES:
            raise StartupError(
                f"PARLEY_LICENCE__MASTER_KEY must hold at least {MasterKey.MIN_SECRET_BYTES} bytes"
            )
        return MasterKey(secret)
    if settings.environment != "development":
        raise StartupError(
            "PARLEY_LICENCE__MASTER_KEY is required outside development (Base64 of 32 random bytes: "
            "`openssl rand -base64 32`)"
        )
    path = settings.data_dir / DEVELOPMENT_KEY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once must not each write a different key.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return MasterKey(base64.b64decode(path.read_text().strip()))
    except FileExistsError:
        return MasterKey(base64.b64decode(path.read_text().strip()))
    except OSError as error:
        raise StartupError(f"cannot keep the development master key at {path}: {error.strerror}") from None
