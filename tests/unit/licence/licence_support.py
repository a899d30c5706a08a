"""What the licence rules' tests share, on the in-memory store (tests/unit/licence) and on the databases
(tests/integration/licence): the rules over a store that shows the facts its kept units staged, with the
shared fake clock (tests/clock.py); refusals by error kind; devices made ready step by step."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

import pytest

from services.core.errors import ErrorKind, ParleyError
from services.licence.keys import MasterKey
from services.licence.licensing import Licensing
from services.licence.records import ActivationRecord, AppRecord, AppSettings, Fact, LicenceType
from services.licence.store import LicenceStore
from tests.clock import FakeClock

MODEL = "model_1"
AUDIO = LicenceType.AUDIO_CALL
VIDEO = LicenceType.VIDEO_CALL

FactT = TypeVar("FactT")


class StoreWithFacts(LicenceStore, Protocol):
    """A store that also shows the facts of the units it kept, in order, for the tests to check."""

    @property
    def facts(self) -> list[Fact]: ...

    def facts_of(self, kind: type[FactT]) -> list[FactT]: ...


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def licensing(store: LicenceStore, master_key: MasterKey, clock: FakeClock) -> Licensing:
    return Licensing(store, master_key, clock=clock.utc)


@pytest.fixture
async def app(licensing: Licensing) -> AppRecord:
    created, _ = await licensing.apps.create_app("Door bells", AppSettings())
    return created


@contextmanager
def refused(kind: ErrorKind) -> Iterator[None]:
    with pytest.raises(ParleyError) as caught:
        yield
    assert caught.value.kind is kind, caught.value


async def activated(licensing: Licensing, app: AppRecord, sn: str, *, licences: int = 1) -> ActivationRecord:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, licences)
    return await licensing.devices.activate(app.biz_name, MODEL, sn, AUDIO)


async def registered(licensing: Licensing, app: AppRecord, sn: str) -> str:
    """Activate and register `sn`; its device secret."""
    await activated(licensing, app, sn)
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, sn)
    return (await licensing.devices.register_device(sn, ticket.token)).device_secret
