"""`parley migrate` (the chart's pre-install/pre-upgrade Job): every service with tables is brought to head
in the one PostgreSQL database of PARLEY_DATABASE_URL, and a second run finds nothing to do."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.migrations import migrating_services
from tests.integration.cli.running import PARLEY
from tests.postgres import fresh_database_url

pytestmark = pytest.mark.integration


async def test_migrate_brings_every_service_to_head_once() -> None:
    async with fresh_database_url("migrate") as url:
        env = {**os.environ, "PARLEY_DATABASE_URL": url}
        command = [*PARLEY, "migrate"]
        for _ in range(2):
            result = await asyncio.to_thread(
                subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.count("at head") == len(migrating_services()) >= 3
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                tables = set(
                    (
                        await connection.execute(
                            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                        )
                    ).scalars()
                )
        finally:
            await engine.dispose()
    for service in migrating_services():
        assert f"alembic_version_{service.value}" in tables
