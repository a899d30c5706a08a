"""The key that seals every app's webhook signing secret in the dispatcher's database."""

from __future__ import annotations

from services.core.config import Settings
from services.core.sealing import SealingKey, load_master_secret
from services.webhooks.errors import SECRET_UNREADABLE

DEVELOPMENT_KEY_FILE = "webhooks-master.key"


def load_sealing_key(settings: Settings) -> SealingKey:
    """`PARLEY_WEBHOOKS__MASTER_KEY`; in development without one, a key kept in the data folder."""
    secret = load_master_secret(
        settings,
        settings.webhooks.master_key,
        setting="PARLEY_WEBHOOKS__MASTER_KEY",
        development_file=DEVELOPMENT_KEY_FILE,
    )
    return SealingKey(secret, purpose="webhooks/signing-secret", unreadable=SECRET_UNREADABLE)
