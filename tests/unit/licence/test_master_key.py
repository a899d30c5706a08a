import base64
import stat
from pathlib import Path

import pytest

from services.core.config import LicenceSettings, Settings
from services.core.errors import StartupError
from services.licence.keys import generate_private_key
from services.licence.master_key import DEVELOPMENT_KEY_FILE, load_master_key


def test_production_refuses_to_start_without_a_master_key(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="PARLEY_LICENCE__MASTER_KEY is required outside development"):
        load_master_key(Settings(environment="production", data_dir=tmp_path))


def test_a_configured_key_must_be_base64_of_32_bytes(tmp_path: Path) -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(StartupError, match="at least 32 bytes"):
        load_master_key(Settings(data_dir=tmp_path, licence=LicenceSettings(master_key=short)))
    with pytest.raises(StartupError, match="not Base64"):
        load_master_key(Settings(data_dir=tmp_path, licence=LicenceSettings(master_key="not base64!")))


def test_development_keeps_one_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    first = load_master_key(settings)
    key_file = tmp_path / DEVELOPMENT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    second = load_master_key(settings)
    key = generate_private_key()
    sealed = first.seal(key, app_id="A1")
    assert second.open(sealed, app_id="A1").private_numbers() == key.private_numbers()
