"""The licence rules over a real database: every test runs on SQLite (a file) and on PostgreSQL
(conftest.py). The rules themselves are unit-tested on the in-memory store in tests/unit/licence; these
tests keep what only a database shows: migrations, restarts, races between connections, what is stored.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.errors import INVALID_ARGUMENT, ParleyError
from services.core.migrations import upgrade_to_head
from services.licence import errors, keys, signatures
from services.licence.keys import MasterKey
from services.licence.licensing import Licensing
from services.licence.records import ActivationRecord, AppRecord, AppSettings
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
from tests.integration.licence.licence_database import Database, sql_store, staged_events
from tests.integration.schema_drift import schema_drift
from tests.unit.licence.licence_support import AUDIO, MODEL, VIDEO, Clock, activated, refused, registered

pytestmark = pytest.mark.integration


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def licensing(engine: AsyncEngine, master_key: MasterKey, clock: Clock) -> Licensing:
    return Licensing(sql_store(engine), master_key, clock=clock)


@pytest.fixture
async def app(licensing: Licensing) -> AppRecord:
    created, _ = await licensing.apps.create_app("Door bells", AppSettings())
    return created


async def count_rows(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


# Storage and migrations.


async def test_the_migration_creates_exactly_the_tables_of_the_store(engine: AsyncEngine) -> None:
    assert await schema_drift(engine, metadata, "licence_") == []


async def test_migrating_again_changes_nothing(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await upgrade_to_head(engine, "services.licence")
    assert await licensing.apps.get_app(app.biz_name) == app


async def test_everything_survives_a_restart(database: Database, master_key: MasterKey, clock: Clock) -> None:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    before = Licensing(sql_store(engine), master_key, clock=clock)
    app, _ = await before.apps.create_app(
        "Cameras", AppSettings(auto_record=True, media_proxy="proxy.example.com")
    )
    secret = await registered(before, app, "CAM1_dev01")
    await before.authorisations.set_authorisation(app.biz_name, "CAM1_dev01", "user_1", True)
    await before.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    await engine.dispose()

    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    after = Licensing(sql_store(engine), master_key, clock=clock)
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


# Call apps.


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


async def test_a_new_app_has_generated_ids_and_a_key_pair_the_customer_can_use(
    licensing: Licensing, clock: Clock
) -> None:
    app, private_key_b64 = await licensing.apps.create_app("  Door bells ", AppSettings())
    assert re.fullmatch(r"biz[0-9a-f]{12}", app.biz_name)
    assert re.fullmatch(r"PARLEY[0-9A-F]{13}", app.app_id)
    assert app.workspace_id == "default"
    assert app.name == "Door bells"
    assert app.settings == AppSettings()
    assert app.created_at == app.updated_at == clock.now
    private_key = keys.load_private_key(private_key_b64)
    assert private_key.key_size == 2048
    assert keys.export_public_key(private_key.public_key()) == app.public_key
    # The customer signs with the key Parley handed out; Parley verifies.
    expire_time_ms = int((clock.now + timedelta(minutes=5)).timestamp() * 1000)
    signed = signatures.sign(private_key, app.biz_name, app.app_id, app.workspace_id, "alice", expire_time_ms)
    verified = await licensing.apps.verify_signature(app.biz_name, "alice", signed)
    assert (verified.app_id, verified.workspace_id, verified.expire_time_ms) == (
        app.app_id,
        "default",
        expire_time_ms,
    )


async def test_apps_are_listed_shown_renamed_and_configured(licensing: Licensing, clock: Clock) -> None:
    first, _ = await licensing.apps.create_app("First", AppSettings())
    clock.advance(timedelta(seconds=1))
    second, _ = await licensing.apps.create_app("Second", AppSettings())
    assert await licensing.apps.list_apps() == [first, second]
    assert await licensing.apps.get_app(second.biz_name) == second

    clock.advance(timedelta(seconds=1))
    settings = AppSettings(
        auto_record=True,
        record_callback_url="https://example.com/record",
        room_status_callback_url="http://10.0.0.1:8080/rooms",
        media_proxy="proxy.example.com:3478",
    )
    renamed = await licensing.apps.update_app(first.biz_name, name="Renamed")
    assert (renamed.name, renamed.settings, renamed.updated_at) == ("Renamed", AppSettings(), clock.now)
    configured = await licensing.apps.update_app(first.biz_name, settings=settings)
    assert (configured.name, configured.settings) == ("Renamed", settings)
    assert await licensing.apps.get_app(first.biz_name) == configured
    assert configured.created_at == first.created_at


@pytest.mark.parametrize(
    "settings",
    [
        AppSettings(record_callback_url="ftp://example.com/x"),
        AppSettings(record_callback_url="example.com/record"),
        AppSettings(room_status_callback_url="https://"),
        AppSettings(room_status_callback_url="https://example.com:99999/"),
        AppSettings(room_status_callback_url="https://example.com/a b"),
        AppSettings(media_proxy="https://proxy.example.com"),
        AppSettings(media_proxy="proxy example"),
    ],
)
async def test_settings_need_http_urls_and_a_host_name(licensing: Licensing, settings: AppSettings) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.apps.create_app("App", settings)
    assert await licensing.apps.list_apps() == []


async def test_an_app_needs_a_name(licensing: Licensing, app: AppRecord) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.apps.create_app("   ", AppSettings())
    with refused(INVALID_ARGUMENT):
        await licensing.apps.update_app(app.biz_name, name="x" * 129)


async def test_unknown_apps_are_not_found(licensing: Licensing) -> None:
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.get_app("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.update_app("nobody", name="x")
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.rotate_key("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.delete_app("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.issue_signature("nobody", "alice", "24h")
    with refused(errors.SIGNATURE_UNKNOWN_APP):
        await licensing.apps.verify_signature("nobody", "alice", "c2ln")


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


# Signatures.


async def test_issued_signatures_verify_until_they_expire(
    licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    issued = await licensing.apps.issue_signature(app.biz_name, "alice", "3d")
    assert issued.expire_time_ms == int((clock.now + timedelta(days=3)).timestamp() * 1000)
    verified = await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)
    assert verified.expire_time_ms == issued.expire_time_ms
    with refused(errors.SIGNATURE_WRONG_UID):
        await licensing.apps.verify_signature(app.biz_name, "bob", issued.signature)
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.apps.verify_signature(other.biz_name, "alice", issued.signature)
    with refused(INVALID_ARGUMENT):
        await licensing.apps.issue_signature(app.biz_name, "alice", "1y")
    with refused(errors.UID_INVALID):
        await licensing.apps.issue_signature(app.biz_name, "alice smith", "24h")
    clock.advance(timedelta(days=3))
    with refused(errors.SIGNATURE_EXPIRED):
        await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)


async def test_rotating_the_key_invalidates_signatures_of_the_old_key(
    licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    old = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    clock.advance(timedelta(seconds=1))
    rotated, private_key_b64 = await licensing.apps.rotate_key(app.biz_name)
    assert (rotated.biz_name, rotated.app_id, rotated.name) == (app.biz_name, app.app_id, app.name)
    assert rotated.public_key != app.public_key
    assert rotated.updated_at == clock.now
    assert await licensing.apps.get_app(app.biz_name) == rotated
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)
    new = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    await licensing.apps.verify_signature(app.biz_name, "alice", new.signature)
    customer_key = keys.load_private_key(private_key_b64)
    signed = signatures.sign(customer_key, app.biz_name, app.app_id, "default", "alice", new.expire_time_ms)
    assert signed == new.signature


# Device licences.


async def test_licences_are_added_to_one_pool_per_product_and_type(
    licensing: Licensing, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 3)
    pool = await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 2)
    assert (pool.biz_name, pool.model_id, pool.licence_type, pool.total, pool.used) == (
        app.biz_name,
        MODEL,
        AUDIO,
        5,
        0,
    )
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.devices.add_licences(app.biz_name, "model_0", AUDIO, 1)
    listed = await licensing.devices.list_pools(app.biz_name)
    assert [(p.model_id, p.licence_type, p.total) for p in listed] == [
        ("model_0", AUDIO, 1),
        (MODEL, AUDIO, 5),
        (MODEL, VIDEO, 1),
    ]
    with refused(INVALID_ARGUMENT):
        await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 0)
    with refused(errors.MODEL_ID_INVALID):
        await licensing.devices.add_licences(app.biz_name, "model/1", AUDIO, 1)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.add_licences("nobody", MODEL, AUDIO, 1)


async def test_activation_consumes_one_licence_once(
    licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 2)
    first = await licensing.devices.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert first == ActivationRecord(
        app.biz_name, MODEL, "PROD1_dev01", VIDEO, clock.now, newly_activated=True
    )
    clock.advance(timedelta(minutes=1))
    again = await licensing.devices.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert again == ActivationRecord(app.biz_name, MODEL, "PROD1_dev01", VIDEO, first.activated_at, False)
    assert await licensing.devices.get_activation("PROD1_dev01") == again
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert pool.used == 1


async def test_activation_refuses_bad_input_and_missing_licences(
    licensing: Licensing, app: AppRecord
) -> None:
    with refused(errors.SN_TOO_LONG):
        await licensing.devices.activate(app.biz_name, MODEL, "P_" + "d" * 127, AUDIO)
    with refused(errors.SN_ILLEGAL_CHARACTERS):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev 01", AUDIO)
    with refused(errors.MODEL_ID_INVALID):
        await licensing.devices.activate(app.biz_name, "", "P_dev01", AUDIO)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.activate("nobody", MODEL, "P_dev01", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO)
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 1)
    await licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", VIDEO)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.get_activation("P_dev02")


async def test_an_activated_device_keeps_its_licence(licensing: Licensing, app: AppRecord) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.devices.add_licences(other.biz_name, MODEL, AUDIO, 1)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev01", VIDEO)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.devices.activate(other.biz_name, MODEL, "P_dev01", AUDIO)
    assert [pool.used for pool in await licensing.devices.list_pools(app.biz_name)] == [1, 0]
    assert [pool.used for pool in await licensing.devices.list_pools(other.biz_name)] == [0]


@pytest.mark.parametrize("licences", [5])
async def test_n_licences_activate_exactly_n_of_2n_racing_devices(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord, licences: int
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, licences)
    sns = [f"RACE_dev{index:02d}" for index in range(2 * licences)]
    outcomes = await asyncio.gather(
        *(licensing.devices.activate(app.biz_name, MODEL, sn, AUDIO) for sn in sns), return_exceptions=True
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, ActivationRecord)]
    lost = [outcome for outcome in outcomes if not isinstance(outcome, ActivationRecord)]
    assert len(won) == licences and all(activation.newly_activated for activation in won)
    assert all(
        isinstance(error, ParleyError) and error.kind is errors.LICENCE_POOL_EXHAUSTED for error in lost
    ), lost
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert (pool.total, pool.used) == (licences, licences)
    assert await count_rows(engine, activations) == licences
    assert (await staged_events(engine)).count("DeviceActivated") == licences


async def test_one_device_activated_by_racing_requests_consumes_one_licence(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 3)
    outcomes = await asyncio.gather(
        *(licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(6))
    )
    assert sum(activation.newly_activated for activation in outcomes) == 1
    assert len({activation.activated_at for activation in outcomes}) == 1
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert pool.used == 1
    assert await count_rows(engine, activations) == 1
    assert (await staged_events(engine)).count("DeviceActivated") == 1


async def test_the_last_licence_raced_for_by_one_device_twice_activates_it(
    licensing: Licensing, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 1)
    outcomes = await asyncio.gather(
        *(licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(2))
    )
    assert sorted(activation.newly_activated for activation in outcomes) == [False, True]


async def test_batch_activation_answers_for_each_sn(licensing: Licensing, app: AppRecord) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 2)
    results = await licensing.devices.batch_activate(
        app.biz_name, MODEL, AUDIO, ["P_dev01", "bad sn", "P_dev01", "P_dev02", "P_dev03"]
    )
    assert [(result.sn, result.code) for result in results] == [
        ("P_dev01", 0),
        ("bad sn", 9800002),
        ("P_dev01", 0),
        ("P_dev02", 0),
        ("P_dev03", 9800101),
    ]
    assert [result.activation.newly_activated if result.activation else None for result in results] == [
        True,
        None,
        False,
        True,
        None,
    ]
    assert results[1].msg and results[4].msg and not results[0].msg
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.batch_activate("nobody", MODEL, AUDIO, ["P_dev04"])
    with refused(errors.MODEL_ID_INVALID):
        await licensing.devices.batch_activate(app.biz_name, "bad model", AUDIO, ["P_dev04"])


# Registration.


async def test_a_device_registers_once_with_a_fresh_ticket(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    await activated(licensing, app, "P_dev01")
    assert not await licensing.devices.is_registered("P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    assert (ticket.sn, ticket.expires_at) == ("P_dev01", clock.now + timedelta(minutes=5))
    clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    registration = await licensing.devices.register_device("P_dev01", ticket.token)
    assert (registration.biz_name, registration.sn, registration.registered_at, registration.replaced) == (
        app.biz_name,
        "P_dev01",
        clock.now,
        False,
    )
    assert await licensing.devices.is_registered("P_dev01")
    device = await licensing.devices.authenticate_device("P_dev01", registration.device_secret)
    assert (device.biz_name, device.model_id, device.sn, device.licence_type) == (
        app.biz_name,
        MODEL,
        "P_dev01",
        AUDIO,
    )
    with refused(errors.SN_TICKET_USED):
        await licensing.devices.register_device("P_dev01", ticket.token)
    # Neither credential is stored as given.
    async with engine.connect() as connection:
        stored = [
            " ".join(str(value) for value in row)
            for table in (sn_tickets, registrations)
            for row in await connection.execute(select(table))
        ]
    assert not any(ticket.token in row or registration.device_secret in row for row in stored)


async def test_a_ticket_expires_after_five_minutes(
    licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    clock.advance(timedelta(minutes=5))
    with refused(errors.SN_TICKET_EXPIRED):
        await licensing.devices.register_device("P_dev01", ticket.token)
    assert not await licensing.devices.is_registered("P_dev01")


async def test_a_ticket_registers_only_its_own_device(licensing: Licensing, app: AppRecord) -> None:
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.SN_TICKET_FOREIGN):
        await licensing.devices.register_device("P_dev02", ticket.token)
    with refused(errors.SN_TICKET_UNKNOWN):
        await licensing.devices.register_device("P_dev02", "not-a-ticket")
    # The refused attempts did not spend it.
    await licensing.devices.register_device("P_dev01", ticket.token)


async def test_racing_registrations_with_one_ticket_succeed_once(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    outcomes = await asyncio.gather(
        *(licensing.devices.register_device("P_dev01", ticket.token) for _ in range(5)),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    [success] = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert all(isinstance(error, ParleyError) and error.code == -10008 for error in failures), failures
    assert (await licensing.devices.authenticate_device("P_dev01", success.device_secret)).sn == "P_dev01"
    assert (await staged_events(engine)).count("DeviceRegistered") == 1


async def test_a_device_never_activated_cannot_register(licensing: Licensing, app: AppRecord) -> None:
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.register_device("P_dev01", "any-ticket")
    # Nor can another app's device get a ticket from this app.
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, other, "P_dev02")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev02")
    assert not await licensing.devices.is_registered("P_dev01")


async def test_registering_again_replaces_the_secret(licensing: Licensing, app: AppRecord) -> None:
    old_secret = await registered(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    registration = await licensing.devices.register_device("P_dev01", ticket.token)
    assert registration.replaced
    assert registration.device_secret != old_secret
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.devices.authenticate_device("P_dev01", old_secret)
    await licensing.devices.authenticate_device("P_dev01", registration.device_secret)


async def test_only_a_registered_device_with_its_secret_authenticates(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.devices.authenticate_device("P_dev01", "anything")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.devices.authenticate_device("P_nobody", "anything")
    secret = await registered(licensing, app, "P_dev02")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.devices.authenticate_device("P_dev01", secret)


# Authorisation.


async def test_paging_returns_every_authorised_user_exactly_once(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    open_ids = [f"user_{index:02d}" for index in range(23)]
    for open_id in open_ids:
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", open_id, True)
    pages = [
        await licensing.authorisations.list_authorised_users("P_dev01", offset, 10)
        for offset in (0, 10, 20, 30)
    ]
    assert [len(page) for page, _ in pages] == [10, 10, 3, 0]
    assert {total for _, total in pages} == {23}
    assert [user.open_id for page, _ in pages for user in page] == open_ids


async def test_users_added_while_paging_do_not_repeat_earlier_pages(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    for index in range(23):
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", f"user_{index:02d}", True)
    seen: list[str] = []
    while page := (await licensing.authorisations.list_authorised_users("P_dev01", len(seen), 10))[0]:
        seen += [user.open_id for user in page]
        if len(seen) <= 20:
            # Other users authorise the device between the device's requests, some at the same moment.
            await asyncio.gather(
                *(
                    licensing.authorisations.set_authorisation(
                        app.biz_name, "P_dev01", f"late_{len(seen)}_{index}", True
                    )
                    for index in range(3)
                )
            )
    assert len(seen) == len(set(seen)) == 23 + 2 * 3


async def test_pages_hold_at_most_ten_users_and_skip_revoked_ones(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    for index in range(12):
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", f"user_{index:02d}", True)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_00", False)
    page, total = await licensing.authorisations.list_authorised_users("P_dev01", 0, 50)
    assert (len(page), total) == (10, 11)
    assert page[0].open_id == "user_01"
    assert (await licensing.authorisations.list_authorised_users("P_dev01"))[0] == page
    for offset, limit in ((0, 0), (-1, 10)):
        with refused(INVALID_ARGUMENT):
            await licensing.authorisations.list_authorised_users("P_dev01", offset, limit)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.authorisations.list_authorised_users("P_dev02")


async def test_authorising_needs_a_device_of_the_app_and_a_good_open_id(
    licensing: Licensing, app: AppRecord, clock: Clock
) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, other, "P_dev02")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev02", "user_1", True)
    await activated(licensing, app, "P_dev01")
    with refused(errors.OPEN_ID_MALFORMED):
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user 1", True)
    with refused(errors.APP_NOT_FOUND):
        await licensing.authorisations.set_authorisation("nobody", "P_dev01", "user_1", True)
    record = await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    assert (record.biz_name, record.sn, record.open_id, record.status, record.updated_at) == (
        app.biz_name,
        "P_dev01",
        "user_1",
        1,
        clock.now,
    )


async def test_a_user_lists_the_devices_it_authorised(licensing: Licensing, app: AppRecord) -> None:
    await activated(licensing, app, "P_dev01", licences=3)
    await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    await licensing.devices.activate(app.biz_name, MODEL, "P_dev03", AUDIO)
    for sn in ("P_dev02", "P_dev01", "P_dev03"):
        await licensing.authorisations.set_authorisation(app.biz_name, sn, "user_1", True)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev03", "user_1", False)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev03", "user_2", True)
    devices = await licensing.authorisations.list_authorised_devices(app.biz_name, "user_1")
    assert [(device.sn, device.status) for device in devices] == [("P_dev02", 1), ("P_dev01", 1)]
    assert await licensing.authorisations.list_authorised_devices(app.biz_name, "user_9") == []
    with refused(errors.OPEN_ID_MALFORMED):
        await licensing.authorisations.list_authorised_devices(app.biz_name, "")


# Device calls.


async def test_a_device_call_is_checked_in_the_seed_order(licensing: Licensing, app: AppRecord) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, other, "Q_dev01")
    await licensing.authorisations.set_authorisation(other.biz_name, "Q_dev01", "other_user", True)
    with refused(errors.DEVICE_ID_INVALID):  # -2: not activated
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    await activated(licensing, app, "P_dev01")
    with refused(errors.DEVICE_ID_INVALID):  # -2: activated, not registered
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.devices.register_device("P_dev01", ticket.token)
    with refused(errors.MODEL_ID_MISMATCH):  # -17, before the open_id is looked at
        await licensing.authorisations.check_device_call("P_dev01", "bad open id", "model_2")
    with refused(errors.OPEN_ID_MALFORMED):  # -7
        await licensing.authorisations.check_device_call("P_dev01", "bad open id", MODEL)
    with refused(errors.OPEN_ID_UNKNOWN):  # -20
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    with refused(errors.OPEN_ID_WRONG_APP):  # -19
        await licensing.authorisations.check_device_call("P_dev01", "other_user", MODEL)
    await activated(licensing, app, "P_dev02")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev02", "user_1", True)
    with refused(errors.OPEN_ID_NOT_BOUND):  # -9: a user of the app, but not of this device
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    device = await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    assert (device.biz_name, device.sn, device.model_id, device.licence_type) == (
        app.biz_name,
        "P_dev01",
        MODEL,
        AUDIO,
    )
    assert await licensing.authorisations.check_device_call("P_dev01", "user_1") == device
    assert await licensing.authorisations.check_device_call("P_dev01", "user_1", "") == device
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", False)
    with refused(errors.OPEN_ID_NOT_AUTHORISED):  # -8
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    with refused(errors.ACCOUNT_IN_ARREARS):  # -15
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.authorisations.set_account_status(app.biz_name, False, event_id="e2")
    await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)


# Account status.


async def test_account_status_applies_each_event_once(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    assert await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    assert not await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    assert await licensing.authorisations.set_account_status(app.biz_name, False, event_id="e2")
    assert not await licensing.authorisations.set_account_status(app.biz_name, False, event_id="e2")
    # An app this service does not (or no longer) know is recorded, not refused: the event is consumed.
    assert await licensing.authorisations.set_account_status("gone", True, event_id="e3")
    async with engine.connect() as connection:
        rows = (await connection.execute(select(account_status).order_by(account_status.c.biz_name))).all()
    assert [(row.biz_name, row.in_arrears, row.last_event_id) for row in rows] == sorted(
        [(app.biz_name, False, "e2"), ("gone", True, "e3")]
    )
    with refused(INVALID_ARGUMENT):
        await licensing.authorisations.set_account_status(app.biz_name, True, event_id="")


# Deleting an app.


async def test_deleting_an_app_deletes_everything_under_it(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    kept_secret = await registered(licensing, other, "Q_dev01")
    await licensing.authorisations.set_authorisation(other.biz_name, "Q_dev01", "user_1", True)
    await registered(licensing, app, "P_dev01")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")

    assert await licensing.apps.delete_app(app.biz_name) == app
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.get_app(app.biz_name)
    with refused(errors.DEVICE_ID_INVALID):
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    for table in (pools, activations, sn_tickets, registrations, users, authorisations):
        async with engine.connect() as connection:
            left = await connection.scalar(
                select(func.count()).select_from(table).where(table.c.biz_name == app.biz_name)
                if "biz_name" in table.c
                else select(func.count()).select_from(table).where(table.c.sn == "P_dev01")
            )
        assert left == 0, table.name
    assert await count_rows(engine, account_status) == 0
    # The other app is untouched, and the freed sn may be activated again.
    await licensing.devices.authenticate_device("Q_dev01", kept_secret)
    await licensing.authorisations.check_device_call("Q_dev01", "user_1", MODEL)
    assert (await activated(licensing, other, "P_dev01")).newly_activated
