"""The licence rules over the in-memory store, with a clock the tests move."""

from __future__ import annotations

import os

import pytest

from services.licence.keys import MasterKey
from services.licence.licensing import Licensing
from services.licence.records import AppRecord, AppSettings
from tests.unit.licence.fake_store import InMemoryLicenceStore
from tests.unit.licence.licence_support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def store() -> InMemoryLicenceStore:
    return InMemoryLicenceStore()


@pytest.fixture
def licensing(store: InMemoryLicenceStore, master_key: MasterKey, clock: Clock) -> Licensing:
    return Licensing(store, master_key, clock=clock)


@pytest.fixture
async def app(licensing: Licensing) -> AppRecord:
    created, _ = await licensing.apps.create_app("Door bells", AppSettings())
    return created
