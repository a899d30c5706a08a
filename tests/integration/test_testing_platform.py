"""The test platform itself (tests/testing.py): what only it does, beyond what every integration test that
runs on it shows: settings handed to a service process through `PARLEY_*` variables, services on a
PostgreSQL URL that keeps their tables in a schema of their own, and what is left after a failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from parley.licence.v1 import licence_pb2
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.config import ClientIceSettings, ServiceName, Settings, TurnRestSettings
from services.core.embedded_broker import port_is_free
from tests.postgres import fresh_database_url
from tests.testing import Instance, _as_env, _merge, start_platform


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
    tmp_path: Path,
) -> None:
    async with fresh_database_url() as url:
        async with start_platform(tmp_path, ServiceName.LICENCE, database_url=url) as platform:
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


async def test_a_failing_test_leaves_no_service_process_or_port_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        async with start_platform(tmp_path, Instance(ServiceName.LICENCE, process=True)) as platform:
            licence = platform["licence"]
            await platform.licence.ListApps(licence_pb2.ListAppsRequest())
            raise RuntimeError("the test failed")
    assert licence.process is not None and licence.process.poll() is not None
    assert port_is_free("127.0.0.1", int(licence.grpc_address.rsplit(":", 1)[1]))


async def test_a_process_that_cannot_start_fails_the_test_with_its_last_log_lines(tmp_path: Path) -> None:
    # No master key outside development: the licence service refuses to start (docs/licence.md).
    without_key = Instance(ServiceName.LICENCE, process=True, settings={"licence": {"master_key": None}})
    with pytest.raises(
        RuntimeError, match=r"licence stopped during start-up: (.|\n)*PARLEY_LICENCE__MASTER_KEY"
    ):
        async with start_platform(tmp_path, without_key):
            pass
