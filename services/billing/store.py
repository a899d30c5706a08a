"""Billing's tables (created by its Alembic migrations, services/billing/migrations).

Times of usage are integer milliseconds since the epoch: the figures are exact sums of them, with no
rounding through a database's timestamp type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    event,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing.figures import Figures
from services.core.db import UtcDateTime, create_engine
from services.core.outbox import outbox_table

metadata = MetaData()


def _figure_columns() -> list[Column[int]]:
    return [Column(name, BigInteger, nullable=False, default=0) for name in Figures.names()]


# Where the consumer stands in each partition: written in the transaction that writes what it read.
offsets = Table(
    "billing_offsets",
    metadata,
    Column("topic", String(128), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

# The metering ledger: one row per tick id, however often the tick is delivered.
ticks = Table(
    "billing_ticks",
    metadata,
    Column("tick_id", String(160), primary_key=True),
    Column("biz_name", String(128), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("uid", String(128), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("role", SmallInteger, nullable=False),
    Column("tier", SmallInteger, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Index("ix_billing_ticks_biz_start", "biz_name", "start_ms"),
)

# Rooms, participants' stays and client sessions: one row per natural id, its ends filled in by whichever
# fact (start or end) arrives, in any order, any number of times.
spans = Table(
    "billing_spans",
    metadata,
    Column("span_id", String(320), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("biz_name", String(128), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("uid", String(128), nullable=False),
    Column("engine", SmallInteger, nullable=False),
    Column("start_ms", BigInteger, nullable=True),
    Column("end_ms", BigInteger, nullable=True),
    Index("ix_billing_spans_biz_kind_start", "biz_name", "kind", "start_ms"),
)

# Every app billing has seen, its plan and account. `closed_through` is the last local day whose figures
# are frozen in `billing_days`; usage that arrives for it or earlier becomes an adjustment.
apps = Table(
    "billing_apps",
    metadata,
    Column("biz_name", String(128), primary_key=True),
    Column("time_zone", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("price_audio", BigInteger, nullable=False),
    Column("price_360p", BigInteger, nullable=False),
    Column("price_540p", BigInteger, nullable=False),
    Column("price_720p", BigInteger, nullable=False),
    Column("price_1080p", BigInteger, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("unit", String(16), nullable=False),
    Column("in_arrears", Boolean, nullable=False),
    Column("first_day", Date, nullable=True),
    Column("closed_through", Date, nullable=True),
    Column("prepaid_since", Date, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

days = Table(
    "billing_days",
    metadata,
    Column("biz_name", String(128), primary_key=True),
    Column("day", Date, primary_key=True),
    *_figure_columns(),
    Column("closed_at", UtcDateTime(), nullable=False),
)

adjustments = Table(
    "billing_adjustments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("biz_name", String(128), nullable=False),
    Column("day", Date, nullable=False),
    *_figure_columns(),
    Column("posted_at", UtcDateTime(), nullable=False),
    Index("ix_billing_adjustments_biz_day", "biz_name", "day"),
)

# Every change of a prepaid balance; the balance is their sum.
entries = Table(
    "billing_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(160), nullable=False, unique=True),
    Column("biz_name", String(128), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("day", Date, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

outbox = outbox_table(metadata, "billing_outbox")


def open_engine(url: str) -> AsyncEngine:
    """Billing's engine. On SQLite every transaction takes the write lock at BEGIN (BEGIN IMMEDIATE), so a
    transaction never reads a snapshot that another writer changes before it writes (SQLite would fail
    it with SQLITE_BUSY_SNAPSHOT); PostgreSQL serialises the same writers on their app's row."""
    engine = create_engine(url)
    if engine.url.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
