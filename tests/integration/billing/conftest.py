"""Billing's database for a test, on SQLite and on PostgreSQL (a fresh schema, tests/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.billing.helpers import billing_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with billing_database(request.param, str(tmp_path)) as url:
        yield url
