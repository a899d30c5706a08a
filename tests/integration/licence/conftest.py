"""The licence service's database for its store tests: every test asking for `database` runs on SQLite (a
file) and on PostgreSQL.

PostgreSQL is `PARLEY_TEST_POSTGRES_URL`, by default the server this machine runs on 127.0.0.1:5432.
Each test gets a schema of its own there, dropped afterwards, so runs sharing the database do not meet.
Without the variable and without a server answering, the PostgreSQL half is skipped, saying why.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.migrations import upgrade_to_head
from tests.integration.licence.licence_database import (
    DEFAULT_POSTGRES_URL,
    Database,
    drop_postgres_schema,
    postgres_schema,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'licence.db'}")
    else:
        url = os.environ.get("PARLEY_TEST_POSTGRES_URL")
        try:
            schema = await postgres_schema(url or DEFAULT_POSTGRES_URL)
        except (OSError, ConnectionError) as error:
            if url:
                raise
            pytest.skip(f"no PostgreSQL at {DEFAULT_POSTGRES_URL} ({error}); set PARLEY_TEST_POSTGRES_URL")
        database = Database(url or DEFAULT_POSTGRES_URL, schema)
    yield database
    for engine in database.engines:
        await engine.dispose()
    if database.schema is not None:
        await drop_postgres_schema(database.url, database.schema)


@pytest.fixture
async def engine(database: Database) -> AsyncEngine:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    return engine
