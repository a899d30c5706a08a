"""The licence rules over the in-memory store, with a clock the tests move."""

from __future__ import annotations

import pytest

from tests.unit.licence.fake_store import InMemoryLicenceStore
from tests.unit.licence.licence_support import app, clock, licensing, master_key

__all__ = ["app", "clock", "licensing", "master_key"]


@pytest.fixture
def store() -> InMemoryLicenceStore:
    return InMemoryLicenceStore()
