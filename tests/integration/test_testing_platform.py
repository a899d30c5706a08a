"""The test platform itself (tests/testing.py): what only it does, beyond what every integration test that
runs on it shows: settings handed to a service process through `PARLEY_*` variables, and services on a
PostgreSQL URL that keeps their tables in a schema of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from parley.licence.v1 import licence_pb2
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.config import ClientIceSettings, ServiceName, Settings, TurnRestSettings
from tests.postgres import fresh_database_url
from tests.testing import _as_env, _merge, start_platform


def test_a_process_reads_the_settings_an_in_process_service_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tree = _merge(
        {
            "data_dir": tmp_path,
            "relay": {"candidate_networks": ["127.0.0.0/8"]},
            "licence": {"master_key": "k"},
        },
        {
            "rooms": {"session_grace_s": 2.5},
            "gateway": {
                "ws_rate_burst": 7,
                "client_ice": ClientIceSettings(
                    turn=TurnRestSettings(urls=["turn:x"], secret=SecretStr("s"))
                ),
            },
        },
    )
    for name, value in _as_env(tree).items():
        monkeypatch.setenv(name, value)
    from_env = Settings()
    assert from_env.model_dump(mode="json") == Settings(**tree).model_dump(mode="json")
    assert from_env.gateway.client_ice.turn is not None
    assert from_env.gateway.client_ice.turn.secret.get_secret_value() == "s"
    assert from_env.relay.candidate_networks == ["127.0.0.0/8"] and from_env.rooms.session_grace_s == 2.5


async def test_services_on_postgresql_keep_their_tables_in_a_schema_of_their_own(
    kafka: str, tmp_path: Path
) -> None:
    async with fresh_database_url() as url:
        async with start_platform(kafka, tmp_path, ServiceName.LICENCE, database_url=url) as platform:
            created = await platform.licence.CreateApp(licence_pb2.CreateAppRequest(name="On PostgreSQL"))
        role = make_url(url).username
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                schemas = await connection.scalars(
                    text(
                        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'licence_apps'"
                    )
                )
                assert role in set(schemas)
                found = await connection.scalar(
                    text("SELECT count(*) FROM licence_apps WHERE biz_name = :biz"),
                    {"biz": created.app.biz_name},
                )
                assert found == 1
        finally:
            await engine.dispose()
