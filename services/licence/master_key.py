"""Where the master key that seals app private keys comes from."""

from __future__ import annotations

from services.core.config import Settings
from services.core.sealing import load_master_secret
from services.licence.keys import MasterKey

DEVELOPMENT_KEY_FILE = "licence-master.key"


def load_master_key(settings: Settings) -> MasterKey:
    """The configured key; in development without one, a key kept in the data folder (created once)."""
    return MasterKey(
        load_master_secret(
            settings,
            settings.licence.master_key,
            setting="PARLEY_LICENCE__MASTER_KEY",
            development_file=DEVELOPMENT_KEY_FILE,
        )
    )
