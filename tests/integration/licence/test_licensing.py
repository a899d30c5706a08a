"""What only a real database shows of the licence service, on SQLite (a file) and on PostgreSQL
(conftest.py): migrations, a restart, what is stored (and what is not), the facts in the outbox.

The rules themselves are tested once, in tests/unit/licence, and run on both databases as well by
test_rules_on_databases.py (their races with real connections included); test_store_contract.py holds the
in-memory store to the database-backed one.
"""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.migrations import upgrade_to_head
from services.licence import errors
from services.licence.keys import MasterKey
from services.licence.licensing import Licensing
from services.licence.records import AppRecord, AppSettings
from services.licence.sql_store import SqlLicenceStore
from services.licence.tables import (
    account_status,
    activations,
    apps,
    authorisations,
    metadata,
    pools,
    registrations,
    sn_tickets,
    users,
)
from tests.clock import FakeClock
from tests.integration.licence.licence_database import Database, sql_store, staged_events
from tests.integration.schema_drift import schema_drift
from tests.unit.licence.licence_support import (
    MODEL,
    activated,
    app,
    clock,
    licensing,
    master_key,
    refused,
    registered,
)

__all__ = ["app", "clock", "licensing", "master_key"]

pytestmark = pytest.mark.integration


@pytest.fixture
def store(engine: AsyncEngine) -> SqlLicenceStore:
    return sql_store(engine)


async def count_rows(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def test_the_migration_creates_exactly_the_tables_of_the_store(engine: AsyncEngine) -> None:
    assert await schema_drift(engine, metadata, "licence_") == []


async def test_migrating_again_changes_nothing(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await upgrade_to_head(engine, "services.licence")
    assert await licensing.apps.get_app(app.biz_name) == app


async def test_everything_survives_a_restart(
    database: Database, master_key: MasterKey, clock: FakeClock
) -> None:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    before = Licensing(sql_store(engine), master_key, clock=clock.utc)
    app, _ = await before.apps.create_app(
        "Cameras", AppSettings(auto_record=True, media_proxy="proxy.example.com")
    )
    secret = await registered(before, app, "CAM1_dev01")
    await before.authorisations.set_authorisation(app.biz_name, "CAM1_dev01", "user_1", True)
    await before.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    await engine.dispose()

    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    after = Licensing(sql_store(engine), master_key, clock=clock.utc)
    assert await after.apps.list_apps() == [app]
    signature = await after.apps.issue_signature(app.biz_name, "user_1", "24h")
    assert (
        await after.apps.verify_signature(app.biz_name, "user_1", signature.signature)
    ).app_id == app.app_id
    [pool] = await after.devices.list_pools(app.biz_name)
    assert (pool.total, pool.used) == (1, 1)
    assert (await after.devices.get_activation("CAM1_dev01")).model_id == MODEL
    assert await after.devices.is_registered("CAM1_dev01")
    assert (await after.devices.authenticate_device("CAM1_dev01", secret)).biz_name == app.biz_name
    users_page, total = await after.authorisations.list_authorised_users("CAM1_dev01")
    assert ([user.open_id for user in users_page], total) == (["user_1"], 1)
    with refused(errors.ACCOUNT_IN_ARREARS):
        await after.authorisations.check_device_call("CAM1_dev01", "user_1", MODEL)


async def test_each_change_stages_its_fact_in_order(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await licensing.apps.update_app(app.biz_name, name="Renamed")
    await licensing.apps.rotate_key(app.biz_name)
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.devices.register_device("P_dev01", ticket.token)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "owner", True)
    await licensing.apps.delete_app(app.biz_name)
    assert await staged_events(engine) == [
        "AppCreated",
        "AppChanged",
        "AppChanged",
        "DeviceActivated",
        "DeviceRegistered",
        "AuthorisationChanged",
        "AppChanged",
    ]


async def test_the_private_key_is_stored_only_sealed(
    engine: AsyncEngine, licensing: Licensing, master_key: MasterKey
) -> None:
    app, private_key_b64 = await licensing.apps.create_app("App", AppSettings())
    async with engine.connect() as connection:
        row = (await connection.execute(select(apps))).mappings().one()
    der = base64.b64decode(private_key_b64)
    stored = " ".join(str(value) for value in row.values())
    assert private_key_b64 not in stored
    # Neither in another encoding: no run of the key's DER shows up in any column, as text or Base64.
    assert all(
        der[start : start + 24].hex() not in stored.lower()
        and base64.b64encode(der[start : start + 24]).decode() not in stored
        for start in range(0, len(der) - 24, 24)
    )
    opened = master_key.open(row["private_key_sealed"], app_id=app.app_id)
    assert (
        base64.b64encode(
            opened.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ).decode()
        == private_key_b64
    )
    # Another master key opens nothing.
    with refused(errors.PRIVATE_KEY_UNREADABLE):
        await Licensing(sql_store(engine), MasterKey(os.urandom(32))).apps.issue_signature(
            app.biz_name, "alice", "24h"
        )


async def test_tickets_and_device_secrets_are_stored_only_hashed(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    registration = await licensing.devices.register_device("P_dev01", ticket.token)
    async with engine.connect() as connection:
        stored = [
            " ".join(str(value) for value in row)
            for table in (sn_tickets, registrations)
            for row in await connection.execute(select(table))
        ]
    assert len(stored) == 2
    assert not any(ticket.token in row or registration.device_secret in row for row in stored)
    assert (
        await licensing.devices.authenticate_device("P_dev01", registration.device_secret)
    ).sn == "P_dev01"


async def test_deleting_an_app_leaves_no_row_of_it(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await registered(licensing, other, "Q_dev01")
    await licensing.authorisations.set_authorisation(other.biz_name, "Q_dev01", "user_1", True)
    await registered(licensing, app, "P_dev01")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")

    assert await licensing.apps.delete_app(app.biz_name) == app
    for table in (apps, pools, activations, sn_tickets, registrations, users, authorisations, account_status):
        async with engine.connect() as connection:
            left = await connection.scalar(
                select(func.count()).select_from(table).where(table.c.biz_name == app.biz_name)
                if "biz_name" in table.c
                else select(func.count()).select_from(table).where(table.c.sn == "P_dev01")
            )
        assert left == 0, table.name
    # The other app keeps its rows.
    for table in (apps, activations, registrations, authorisations):
        assert await count_rows(engine, table) == 1, table.name
