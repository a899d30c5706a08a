"""Migrations run once per database under a lock (services/core/migrations.py): replicas that start
together on one PostgreSQL database (real, a fresh schema) migrate one after the other, and `parley
migrate` migrates every service's database from the command line."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.postgres import fresh_database_url

ROOT = Path(__file__).resolve().parents[3]


async def test_replicas_migrating_at_once_migrate_one_after_the_other(tmp_path: Path) -> None:
    async with fresh_database_url("migrate") as url:
        env = {
            **os.environ,
            "PARLEY_ENVIRONMENT": "development",
            "PARLEY_DATA_DIR": str(tmp_path),
            "PARLEY_DATABASE_URL": url,
        }
        replicas = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}", "migrate", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            for name in ("licence", "licence", "licence", "recorder")
        ]  # fmt: skip
        outputs = await asyncio.gather(*(replica.communicate() for replica in replicas))
        assert [replica.returncode for replica in replicas] == [0, 0, 0, 0], [out for out, _ in outputs]
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                licence = (
                    await connection.execute(text("SELECT version_num FROM alembic_version_licence"))
                ).all()
                recorder = (
                    await connection.execute(text("SELECT version_num FROM alembic_version_recorder"))
                ).all()
        finally:
            await engine.dispose()
    assert len(licence) == 1 and len(recorder) == 1


def test_parley_migrate_migrates_every_service_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "migrate"],
        env={**os.environ, "PARLEY_ENVIRONMENT": "development", "PARLEY_DATA_DIR": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    databases = sorted(path.name for path in (tmp_path / "db").glob("*.db"))
    assert databases, list(tmp_path.rglob("*"))
    for database in databases:
        with sqlite3.connect(tmp_path / "db" / database) as connection:
            tables = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        assert any(name.startswith("alembic_version_") for name in tables), (database, tables)
