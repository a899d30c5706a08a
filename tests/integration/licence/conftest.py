"""The licence service's database for its store tests: every test asking for `database` (or `engine`) runs
on SQLite (a file) and on PostgreSQL.

PostgreSQL is `PARLEY_TEST_POSTGRES_URL`, by default the server this machine runs on 127.0.0.1:5432.
Each test gets a schema of its own there, dropped afterwards, so runs sharing the database do not meet.
Without the variable and without a server answering, the PostgreSQL half is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.migrations import upgrade_to_head
from tests.integration.licence.licence_database import Database, empty_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def engine(database: Database) -> AsyncEngine:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    return engine
