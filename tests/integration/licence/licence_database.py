"""The licence service's databases for its store tests (the fixtures are in conftest.py): a SQLite file
or a PostgreSQL schema of its own, the database-backed store over it, and what that store staged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core.db import create_engine
from services.core.events import EventPublisher, create_broker
from services.core.outbox import Outbox
from services.licence.records import Fact
from services.licence.sql_store import SqlLicenceStore
from services.licence.store import LicenceReads, LicenceWrites
from services.licence.tables import outbox
from tests.postgres import fresh_schema

FactT = TypeVar("FactT")


@dataclass
class Database:
    """One empty database (a SQLite file or a PostgreSQL schema) that engines can be opened on again."""

    url: str
    schema: str | None = None
    engines: list[AsyncEngine] = field(default_factory=list)

    def open(self) -> AsyncEngine:
        if self.schema is None:
            engine = create_engine(self.url)
        else:
            engine = create_async_engine(
                self.url, pool_pre_ping=True, connect_args={"server_settings": {"search_path": self.schema}}
            )
        self.engines.append(engine)
        return engine


@asynccontextmanager
async def empty_database(kind: str, folder: Path) -> AsyncIterator[Database]:
    """An empty "sqlite" database in `folder` or "postgresql" schema (tests/postgres.py), gone afterwards
    with its engines."""
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            database = Database(f"sqlite+aiosqlite:///{folder / 'licence.db'}")
        else:
            database = Database(*await stack.enter_async_context(fresh_schema("licence_test")))
        try:
            yield database
        finally:
            for engine in database.engines:
                await engine.dispose()


def sql_store(engine: AsyncEngine) -> SqlLicenceStore:
    """The database-backed store over the real outbox table; its relay never runs here, so what the rules
    staged stays in the table for the tests to read (and what a rolled-back unit staged does not)."""
    unconnected = create_broker("127.0.0.1:9", client_id="unused", tracer_provider=TracerProvider())
    return SqlLicenceStore(
        engine, Outbox(outbox, engine, EventPublisher(unconnected, source="//parley/test"))
    )


async def staged_events(engine: AsyncEngine) -> list[str]:
    """The names of the events staged in the outbox, in order."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.event_type).order_by(outbox.c.id))
    return [event_type.rsplit(".", 1)[1] for event_type in rows.scalars()]


class FactRecordingStore:
    """The database-backed store, also showing the facts of the units it committed (as the in-memory store
    does), so that the rules' unit tests run on the databases unchanged (test_rules_on_databases.py)."""

    def __init__(self, store: SqlLicenceStore) -> None:
        self._store = store
        self._facts: list[Fact] = []

    @property
    def facts(self) -> list[Fact]:
        return list(self._facts)

    def facts_of(self, kind: type[FactT]) -> list[FactT]:
        return [fact for fact in self._facts if isinstance(fact, kind)]

    def reading(self) -> AbstractAsyncContextManager[LicenceReads]:
        return self._store.reading()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[LicenceWrites]:
        staged: list[Fact] = []
        async with self._store.writing() as unit:
            yield _RecordingUnit(unit, staged)
        self._facts += staged


class _RecordingUnit:
    def __init__(self, unit: LicenceWrites, staged: list[Fact]) -> None:
        self._unit = unit
        self._staged = staged

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unit, name)

    async def stage(self, fact: Fact) -> None:
        await self._unit.stage(fact)
        self._staged.append(fact)
