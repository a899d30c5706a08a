"""The licence rules' unit tests run again on SQLite and on PostgreSQL: the rules over the database-backed
store, with real connections racing where a test races requests. One definition of each rule test
(tests/unit/licence/test_apps.py, test_devices.py, test_authorisations.py) serves both stores; what only a
database shows (migrations, restarts, what is stored, the outbox) is in test_licensing.py."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.licence.licence_database import FactRecordingStore, sql_store
from tests.unit.licence.licence_support import app, clock, licensing, master_key
from tests.unit.licence.test_apps import *  # noqa: F403
from tests.unit.licence.test_authorisations import *  # noqa: F403
from tests.unit.licence.test_devices import *  # noqa: F403

__all__ = ["app", "clock", "licensing", "master_key"]

pytestmark = pytest.mark.integration


@pytest.fixture
def store(engine: AsyncEngine) -> FactRecordingStore:
    return FactRecordingStore(sql_store(engine))
