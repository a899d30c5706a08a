from pathlib import Path

import pytest

from services.core.config import ServiceName, Settings


def test_nested_settings_come_from_parley_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("PARLEY_GRPC__ROOMS", "127.0.0.1:6000")
    monkeypatch.setenv("PARLEY_GATEWAY__HTTP_PORT", "9999")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.grpc.address_of(ServiceName.ROOMS) == "127.0.0.1:6000"
    assert settings.gateway.http_port == 9999


def test_every_listener_defaults_to_loopback() -> None:
    settings = Settings()
    assert settings.gateway.http_host == "127.0.0.1"
    assert all(settings.grpc.address_of(name).startswith("127.0.0.1:") for name in ServiceName)


def test_each_service_gets_its_own_sqlite_file_unless_a_database_url_is_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url_for(ServiceName.BILLING) == f"sqlite+aiosqlite:///{tmp_path}/db/billing.db"
    shared = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://127.0.0.1/test")
    assert shared.database_url_for(ServiceName.BILLING) == "postgresql+asyncpg://127.0.0.1/test"
