"""Alembic, run from code: every service migrates its own tables to head, from `parley migrate` (which
`parley up` runs first: `python -m services.<name> migrate` per service) and when it starts, unless
`PARLEY_MIGRATE_ON_START=false` (replicas of a deployment whose migrations ran once before them).

Each service keeps its migrations in `services/<name>/migrations/` with a two-line `env.py` that calls
`run_env(metadata)`, and its own version table, so several services may share one PostgreSQL database.
On PostgreSQL a migration runs under a transaction-scoped advisory lock, one for the whole database:
replicas starting together migrate one after the other, and the ones after the first find nothing to do.
"""

from __future__ import annotations

from importlib import resources
from importlib.util import find_spec
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import ServiceName, Settings
from services.core.db import ensure_sqlite_folder
from services.core.errors import StartupError

# The advisory lock every service's migrations take on a PostgreSQL database ("parley" in ASCII).
MIGRATION_LOCK = 0x7061726C6579


def migrating_services() -> list[ServiceName]:
    """The services that keep tables: those with a `migrations/` folder in their package (found without
    importing the package)."""
    found = []
    for name in ServiceName:
        spec = find_spec(f"services.{name.value}")
        origin = spec.origin if spec is not None else None
        if origin is not None and (Path(origin).parent / "migrations" / "env.py").is_file():
            found.append(name)
    return found


def _config(package: str, connection: Connection | None = None, settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files(package) / "migrations"))
    config.attributes["connection"] = connection
    # For a migration that needs configuration, such as the master key to seal rows kept in plain text.
    config.attributes["settings"] = settings
    config.attributes["version_table"] = f"alembic_version_{package.rsplit('.', 1)[-1]}"
    return config


async def upgrade_to_head(
    engine: AsyncEngine, package: str, settings: Settings | None = None, *, revision: str = "head"
) -> None:
    """Apply every migration of `package` (for example "services.billing") that the database lacks;
    `settings` reach the migrations that need them (`migration_settings`). Tests stop at an older
    `revision` to write rows as it had them."""
    try:
        ensure_sqlite_folder(engine)
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await connection.run_sync(
                lambda sync: command.upgrade(_config(package, sync, settings), revision)
            )
    except (OperationalError, OSError) as error:
        where = engine.url.render_as_string(hide_password=True)
        reason = getattr(error, "orig", None) or getattr(error, "strerror", None) or error
        raise StartupError(f"cannot open the database {where}: {reason}") from None


def run_env(metadata: MetaData) -> None:
    """The body of a service's `migrations/env.py`: migrate on the connection `upgrade_to_head` passed."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through services.core.migrations.upgrade_to_head")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def migration_settings() -> Settings:
    """In a migration: the settings `upgrade_to_head` was given."""
    settings = context.config.attributes.get("settings")
    if settings is None:
        raise RuntimeError("this migration needs the settings: pass them to upgrade_to_head")
    return settings
