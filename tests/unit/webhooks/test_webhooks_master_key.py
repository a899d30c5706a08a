"""PARLEY_WEBHOOKS__MASTER_KEY: required in production like the licence's, kept in the data folder in
development, and a store key that is not the one that sealed gives SECRET_UNREADABLE naming the setting."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from services.core.config import Settings, WebhooksSettings
from services.core.errors import ParleyError, StartupError
from services.webhooks.errors import SECRET_UNREADABLE
from services.webhooks.master_key import DEVELOPMENT_KEY_FILE, load_sealing_key
from services.webhooks.signing import new_secret


def configured(secret: bytes, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, webhooks=WebhooksSettings(master_key=base64.b64encode(secret).decode())
    )


def test_production_refuses_to_start_without_a_master_key(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="PARLEY_WEBHOOKS__MASTER_KEY is required outside development"):
        load_sealing_key(Settings(environment="production", data_dir=tmp_path))


def test_a_configured_key_must_be_base64_of_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="PARLEY_WEBHOOKS__MASTER_KEY must hold at least 32 bytes"):
        load_sealing_key(configured(b"x" * 16, tmp_path))
    with pytest.raises(StartupError, match="PARLEY_WEBHOOKS__MASTER_KEY is not Base64"):
        load_sealing_key(Settings(webhooks=WebhooksSettings(master_key="not base64!")))


def test_development_keeps_one_key_file_of_its_own_and_reuses_it(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    secret = new_secret()
    sealed = load_sealing_key(settings).seal(secret.encode(), context="b_1")
    key_file = tmp_path / DEVELOPMENT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_sealing_key(settings).open(sealed, context="b_1") == secret.encode()


def test_another_master_key_opens_no_secret_and_says_which_setting(tmp_path: Path) -> None:
    sealed = load_sealing_key(configured(b"a" * 32, tmp_path)).seal(new_secret().encode(), context="b_1")
    with pytest.raises(ParleyError) as caught:
        load_sealing_key(configured(b"b" * 32, tmp_path)).open(sealed, context="b_1")
    assert caught.value.kind is SECRET_UNREADABLE
    assert "PARLEY_WEBHOOKS__MASTER_KEY" in caught.value.message
