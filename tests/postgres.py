"""PostgreSQL for tests: the server at 127.0.0.1:5432 (database `test`, trust auth) or
`PARLEY_TEST_POSTGRES_URL`, with a fresh schema per test so that runs sharing the database never meet.

Two shapes of "fresh", for two kinds of caller:
- `fresh_schema`: a schema for code that opens its own engines and can put the schema on their
  `search_path` (tests/integration/licence/test_licensing.py).
- `fresh_database_url`: a URL a whole service can be given as `PARLEY_DATABASE_URL` and that lands in a
  fresh schema without any setting of its own: it logs in as a new role that owns a schema of its name,
  and PostgreSQL's default `search_path` ("$user", public) puts that schema first.
Both skip the test, saying why, when the default server does not answer and no URL was given.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _as_admin(url: str, *statements: str) -> None:
    admin = create_async_engine(url)
    try:
        async with admin.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await admin.dispose()


async def _first_statement(*statements: str) -> str:
    """The admin URL, once `statements` ran there; skips the test when no server answers."""
    url = os.environ.get("PARLEY_TEST_POSTGRES_URL")
    try:
        await _as_admin(url or DEFAULT_POSTGRES_URL, *statements)
    except (OSError, ConnectionError) as error:
        if url:
            raise
        pytest.skip(f"no PostgreSQL at {DEFAULT_POSTGRES_URL} ({error}); set PARLEY_TEST_POSTGRES_URL")
    return url or DEFAULT_POSTGRES_URL


@asynccontextmanager
async def fresh_schema(prefix: str = "test") -> AsyncIterator[tuple[str, str]]:
    """(admin URL, schema name) of an empty schema, dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = await _first_statement(f'CREATE SCHEMA "{schema}"')
    try:
        yield url, schema
    finally:
        await _as_admin(url, f'DROP SCHEMA "{schema}" CASCADE')


@asynccontextmanager
async def fresh_database_url(prefix: str = "platform") -> AsyncIterator[str]:
    """A URL whose tables land in an empty schema of their own; schema and role dropped afterwards.

    Engines on the URL must be disposed of (services are stopped) before the block ends."""
    role = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = await _first_statement(
        f'CREATE ROLE "{role}" LOGIN', f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"'
    )
    try:
        yield make_url(url).set(username=role, password=None).render_as_string(hide_password=False)
    finally:
        await _as_admin(url, f'DROP SCHEMA "{role}" CASCADE', f'DROP ROLE "{role}"')
