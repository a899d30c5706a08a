"""How a service's database, as its Alembic migrations left it, differs from the tables its store declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


async def schema_drift(engine: AsyncEngine, metadata: MetaData, table_prefix: str) -> list[object]:
    """Alembic's differences between `metadata` and the database, column types included, over the tables
    named with `table_prefix` (other services' tables may share the database)."""

    def ours(name: str | None, kind: str, _: object) -> bool:
        return kind != "table" or (name or "").startswith(table_prefix)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(differences)
