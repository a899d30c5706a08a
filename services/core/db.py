"""Async SQLAlchemy engines: a SQLite file by default, PostgreSQL by URL, the same code for both."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _traced(create_async_engine(url, pool_pre_ping=True))
    engine = _traced(create_async_engine(url, connect_args={"timeout": 30}))

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
        # WAL lets readers run beside the one writer; foreign keys are off in SQLite unless asked for.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _traced(engine: AsyncEngine) -> AsyncEngine:
    """A span per statement, under the request or event that ran it, to the process's tracer provider.

    Per engine, not SQLAlchemyInstrumentor().instrument(): the instrumentor instruments once per process,
    and tests run several services (several engines) in one process."""
    EngineTracer(
        trace.get_tracer(__name__),
        engine.sync_engine,
        metrics.get_meter(__name__).create_up_down_counter("db.client.connections.usage"),
    )
    return engine


async def database_answers(engine: AsyncEngine) -> bool:
    """The readiness check of a service with a database (services/core/ops.py)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


def ensure_sqlite_folder(engine: AsyncEngine) -> None:
    """Create the folder of a SQLite file; SQLite creates the file but not the folders above it."""
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases: SQLite keeps no zone and hands back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)
