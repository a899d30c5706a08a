"""The licence domain over a real database: every test runs on SQLite (a file) and on PostgreSQL.

PostgreSQL is `PARLEY_TEST_POSTGRES_URL`, by default the server this machine runs on 127.0.0.1:5432.
Each test gets a schema of its own there, dropped afterwards, so runs sharing the database do not meet.
Without the variable and without a server answering, the PostgreSQL half is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core.db import create_engine
from services.core.errors import INVALID_ARGUMENT, ErrorKind, ParleyError
from services.core.events import EventPublisher, create_broker
from services.core.migrations import upgrade_to_head
from services.core.outbox import Outbox
from services.licence import errors, keys, signatures
from services.licence.facts import OutboxFacts
from services.licence.keys import MasterKey
from services.licence.licensing import (
    ActivationRecord,
    AppRecord,
    AppSettings,
    LicenceType,
    Licensing,
)
from services.licence.store import (
    account_status,
    activations,
    apps,
    authorisations,
    metadata,
    outbox,
    pools,
    registrations,
    sn_tickets,
    users,
)
from tests.clock import FakeClock
from tests.integration.schema_drift import schema_drift
from tests.postgres import fresh_schema

pytestmark = pytest.mark.integration

MODEL = "model_1"
AUDIO = LicenceType.AUDIO_CALL
VIDEO = LicenceType.VIDEO_CALL


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


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            database = Database(f"sqlite+aiosqlite:///{tmp_path / 'licence.db'}")
        else:
            database = Database(*await stack.enter_async_context(fresh_schema("licence_test")))
        yield database
        for engine in database.engines:
            await engine.dispose()


@pytest.fixture
async def engine(database: Database) -> AsyncEngine:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    return engine


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def outbox_facts(engine: AsyncEngine) -> OutboxFacts:
    """The real facts adapter over the real outbox table; its relay never runs here, so what the domain
    staged stays in the table for the tests to read (and what a rolled-back transaction staged does not)."""
    unconnected = create_broker("127.0.0.1:9", client_id="unused", tracer_provider=TracerProvider())
    return OutboxFacts(Outbox(outbox, engine, EventPublisher(unconnected, source="//parley/test")))


async def staged_events(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.event_type).order_by(outbox.c.id))
    return [event_type.rsplit(".", 1)[1] for event_type in rows.scalars()]


@pytest.fixture
def licensing(engine: AsyncEngine, master_key: MasterKey, clock: FakeClock) -> Licensing:
    return Licensing(engine, master_key, facts=outbox_facts(engine), clock=clock.utc)


@pytest.fixture
async def app(licensing: Licensing) -> AppRecord:
    created, _ = await licensing.create_app("Door bells", AppSettings())
    return created


@contextmanager
def refused(kind: ErrorKind) -> Iterator[None]:
    with pytest.raises(ParleyError) as caught:
        yield
    assert caught.value.kind is kind, caught.value


async def activated(licensing: Licensing, app: AppRecord, sn: str, *, licences: int = 1) -> ActivationRecord:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, licences)
    return await licensing.activate(app.biz_name, MODEL, sn, AUDIO)


async def registered(licensing: Licensing, app: AppRecord, sn: str) -> str:
    """Activate and register `sn`; its device secret."""
    await activated(licensing, app, sn)
    ticket = await licensing.issue_sn_ticket(app.biz_name, sn)
    return (await licensing.register_device(sn, ticket.token)).device_secret


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
    assert await licensing.get_app(app.biz_name) == app


async def test_everything_survives_a_restart(
    database: Database, master_key: MasterKey, clock: FakeClock
) -> None:
    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    before = Licensing(engine, master_key, facts=outbox_facts(engine), clock=clock.utc)
    app, _ = await before.create_app(
        "Cameras", AppSettings(auto_record=True, media_proxy="proxy.example.com")
    )
    secret = await registered(before, app, "CAM1_dev01")
    await before.set_authorisation(app.biz_name, "CAM1_dev01", "user_1", True)
    await before.set_account_status(app.biz_name, True, event_id="e1")
    await engine.dispose()

    engine = database.open()
    await upgrade_to_head(engine, "services.licence")
    after = Licensing(engine, master_key, facts=outbox_facts(engine), clock=clock.utc)
    assert await after.list_apps() == [app]
    signature = await after.issue_signature(app.biz_name, "user_1", "24h")
    assert (await after.verify_signature(app.biz_name, "user_1", signature.signature)).app_id == app.app_id
    [pool] = await after.list_pools(app.biz_name)
    assert (pool.total, pool.used) == (1, 1)
    assert (await after.get_activation("CAM1_dev01")).model_id == MODEL
    assert await after.is_registered("CAM1_dev01")
    assert (await after.authenticate_device("CAM1_dev01", secret)).biz_name == app.biz_name
    users_page, total = await after.list_authorised_users("CAM1_dev01")
    assert ([user.open_id for user in users_page], total) == (["user_1"], 1)
    with refused(errors.ACCOUNT_IN_ARREARS):
        await after.check_device_call("CAM1_dev01", "user_1", MODEL)


# Call apps.


async def test_each_change_stages_its_fact_in_order(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await licensing.update_app(app.biz_name, name="Renamed")
    await licensing.rotate_key(app.biz_name)
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.register_device("P_dev01", ticket.token)
    await licensing.set_authorisation(app.biz_name, "P_dev01", "owner", True)
    await licensing.delete_app(app.biz_name)
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
    licensing: Licensing, clock: FakeClock
) -> None:
    app, private_key_b64 = await licensing.create_app("  Door bells ", AppSettings())
    assert re.fullmatch(r"biz[0-9a-f]{12}", app.biz_name)
    assert re.fullmatch(r"PARLEY[0-9A-F]{13}", app.app_id)
    assert app.workspace_id == "default"
    assert app.name == "Door bells"
    assert app.settings == AppSettings()
    assert app.created_at == app.updated_at == clock.utc()
    private_key = keys.load_private_key(private_key_b64)
    assert private_key.key_size == 2048
    assert keys.export_public_key(private_key.public_key()) == app.public_key
    # The customer signs with the key Parley handed out; Parley verifies.
    expire_time_ms = int((clock.utc() + timedelta(minutes=5)).timestamp() * 1000)
    signed = signatures.sign(private_key, app.biz_name, app.app_id, app.workspace_id, "alice", expire_time_ms)
    verified = await licensing.verify_signature(app.biz_name, "alice", signed)
    assert (verified.app_id, verified.workspace_id, verified.expire_time_ms) == (
        app.app_id,
        "default",
        expire_time_ms,
    )


async def test_apps_are_listed_shown_renamed_and_configured(licensing: Licensing, clock: FakeClock) -> None:
    first, _ = await licensing.create_app("First", AppSettings())
    clock.advance(timedelta(seconds=1))
    second, _ = await licensing.create_app("Second", AppSettings())
    assert await licensing.list_apps() == [first, second]
    assert await licensing.get_app(second.biz_name) == second

    clock.advance(timedelta(seconds=1))
    settings = AppSettings(
        auto_record=True,
        record_callback_url="https://example.com/record",
        room_status_callback_url="http://10.0.0.1:8080/rooms",
        media_proxy="proxy.example.com:3478",
    )
    renamed = await licensing.update_app(first.biz_name, name="Renamed")
    assert (renamed.name, renamed.settings, renamed.updated_at) == ("Renamed", AppSettings(), clock.utc())
    configured = await licensing.update_app(first.biz_name, settings=settings)
    assert (configured.name, configured.settings) == ("Renamed", settings)
    assert await licensing.get_app(first.biz_name) == configured
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
        await licensing.create_app("App", settings)
    assert await licensing.list_apps() == []


async def test_an_app_needs_a_name(licensing: Licensing, app: AppRecord) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.create_app("   ", AppSettings())
    with refused(INVALID_ARGUMENT):
        await licensing.update_app(app.biz_name, name="x" * 129)


async def test_unknown_apps_are_not_found(licensing: Licensing) -> None:
    with refused(errors.APP_NOT_FOUND):
        await licensing.get_app("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.update_app("nobody", name="x")
    with refused(errors.APP_NOT_FOUND):
        await licensing.rotate_key("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.delete_app("nobody")
    with refused(errors.APP_NOT_FOUND):
        await licensing.issue_signature("nobody", "alice", "24h")
    with refused(errors.SIGNATURE_UNKNOWN_APP):
        await licensing.verify_signature("nobody", "alice", "c2ln")


async def test_the_private_key_is_stored_only_sealed(
    engine: AsyncEngine, licensing: Licensing, master_key: MasterKey
) -> None:
    app, private_key_b64 = await licensing.create_app("App", AppSettings())
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
        await Licensing(engine, MasterKey(os.urandom(32)), facts=outbox_facts(engine)).issue_signature(
            app.biz_name, "alice", "24h"
        )


# Signatures.


async def test_issued_signatures_verify_until_they_expire(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    issued = await licensing.issue_signature(app.biz_name, "alice", "3d")
    assert issued.expire_time_ms == int((clock.utc() + timedelta(days=3)).timestamp() * 1000)
    verified = await licensing.verify_signature(app.biz_name, "alice", issued.signature)
    assert verified.expire_time_ms == issued.expire_time_ms
    with refused(errors.SIGNATURE_WRONG_UID):
        await licensing.verify_signature(app.biz_name, "bob", issued.signature)
    other, _ = await licensing.create_app("Other", AppSettings())
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.verify_signature(other.biz_name, "alice", issued.signature)
    with refused(INVALID_ARGUMENT):
        await licensing.issue_signature(app.biz_name, "alice", "1y")
    with refused(errors.UID_INVALID):
        await licensing.issue_signature(app.biz_name, "alice smith", "24h")
    clock.advance(timedelta(days=3))
    with refused(errors.SIGNATURE_EXPIRED):
        await licensing.verify_signature(app.biz_name, "alice", issued.signature)


async def test_rotating_the_key_invalidates_signatures_of_the_old_key(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    old = await licensing.issue_signature(app.biz_name, "alice", "24h")
    clock.advance(timedelta(seconds=1))
    rotated, private_key_b64 = await licensing.rotate_key(app.biz_name)
    assert (rotated.biz_name, rotated.app_id, rotated.name) == (app.biz_name, app.app_id, app.name)
    assert rotated.public_key != app.public_key
    assert rotated.updated_at == clock.utc()
    assert await licensing.get_app(app.biz_name) == rotated
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.verify_signature(app.biz_name, "alice", old.signature)
    new = await licensing.issue_signature(app.biz_name, "alice", "24h")
    await licensing.verify_signature(app.biz_name, "alice", new.signature)
    customer_key = keys.load_private_key(private_key_b64)
    signed = signatures.sign(customer_key, app.biz_name, app.app_id, "default", "alice", new.expire_time_ms)
    assert signed == new.signature


# Device licences.


async def test_licences_are_added_to_one_pool_per_product_and_type(
    licensing: Licensing, app: AppRecord
) -> None:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, 3)
    pool = await licensing.add_licences(app.biz_name, MODEL, AUDIO, 2)
    assert (pool.biz_name, pool.model_id, pool.licence_type, pool.total, pool.used) == (
        app.biz_name,
        MODEL,
        AUDIO,
        5,
        0,
    )
    await licensing.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.add_licences(app.biz_name, "model_0", AUDIO, 1)
    listed = await licensing.list_pools(app.biz_name)
    assert [(p.model_id, p.licence_type, p.total) for p in listed] == [
        ("model_0", AUDIO, 1),
        (MODEL, AUDIO, 5),
        (MODEL, VIDEO, 1),
    ]
    with refused(INVALID_ARGUMENT):
        await licensing.add_licences(app.biz_name, MODEL, AUDIO, 0)
    with refused(errors.MODEL_ID_INVALID):
        await licensing.add_licences(app.biz_name, "model/1", AUDIO, 1)
    with refused(errors.APP_NOT_FOUND):
        await licensing.add_licences("nobody", MODEL, AUDIO, 1)


async def test_activation_consumes_one_licence_once(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    await licensing.add_licences(app.biz_name, MODEL, VIDEO, 2)
    first = await licensing.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert first == ActivationRecord(
        app.biz_name, MODEL, "PROD1_dev01", VIDEO, clock.utc(), newly_activated=True
    )
    clock.advance(timedelta(minutes=1))
    again = await licensing.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert again == ActivationRecord(app.biz_name, MODEL, "PROD1_dev01", VIDEO, first.activated_at, False)
    assert await licensing.get_activation("PROD1_dev01") == again
    [pool] = await licensing.list_pools(app.biz_name)
    assert pool.used == 1


async def test_activation_refuses_bad_input_and_missing_licences(
    licensing: Licensing, app: AppRecord
) -> None:
    with refused(errors.SN_TOO_LONG):
        await licensing.activate(app.biz_name, MODEL, "P_" + "d" * 127, AUDIO)
    with refused(errors.SN_ILLEGAL_CHARACTERS):
        await licensing.activate(app.biz_name, MODEL, "P_dev 01", AUDIO)
    with refused(errors.MODEL_ID_INVALID):
        await licensing.activate(app.biz_name, "", "P_dev01", AUDIO)
    with refused(errors.APP_NOT_FOUND):
        await licensing.activate("nobody", MODEL, "P_dev01", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.activate(app.biz_name, MODEL, "P_dev01", AUDIO)
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, 1)
    await licensing.activate(app.biz_name, MODEL, "P_dev01", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.activate(app.biz_name, MODEL, "P_dev02", VIDEO)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.get_activation("P_dev02")


async def test_an_activated_device_keeps_its_licence(licensing: Licensing, app: AppRecord) -> None:
    other, _ = await licensing.create_app("Other", AppSettings())
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.add_licences(other.biz_name, MODEL, AUDIO, 1)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.activate(app.biz_name, MODEL, "P_dev01", VIDEO)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.activate(other.biz_name, MODEL, "P_dev01", AUDIO)
    assert [pool.used for pool in await licensing.list_pools(app.biz_name)] == [1, 0]
    assert [pool.used for pool in await licensing.list_pools(other.biz_name)] == [0]


@pytest.mark.parametrize("licences", [5])
async def test_n_licences_activate_exactly_n_of_2n_racing_devices(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord, licences: int
) -> None:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, licences)
    sns = [f"RACE_dev{index:02d}" for index in range(2 * licences)]
    outcomes = await asyncio.gather(
        *(licensing.activate(app.biz_name, MODEL, sn, AUDIO) for sn in sns), return_exceptions=True
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, ActivationRecord)]
    lost = [outcome for outcome in outcomes if not isinstance(outcome, ActivationRecord)]
    assert len(won) == licences and all(activation.newly_activated for activation in won)
    assert all(
        isinstance(error, ParleyError) and error.kind is errors.LICENCE_POOL_EXHAUSTED for error in lost
    ), lost
    [pool] = await licensing.list_pools(app.biz_name)
    assert (pool.total, pool.used) == (licences, licences)
    assert await count_rows(engine, activations) == licences
    assert (await staged_events(engine)).count("DeviceActivated") == licences


async def test_one_device_activated_by_racing_requests_consumes_one_licence(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, 3)
    outcomes = await asyncio.gather(
        *(licensing.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(6))
    )
    assert sum(activation.newly_activated for activation in outcomes) == 1
    assert len({activation.activated_at for activation in outcomes}) == 1
    [pool] = await licensing.list_pools(app.biz_name)
    assert pool.used == 1
    assert await count_rows(engine, activations) == 1
    assert (await staged_events(engine)).count("DeviceActivated") == 1


async def test_the_last_licence_raced_for_by_one_device_twice_activates_it(
    licensing: Licensing, app: AppRecord
) -> None:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, 1)
    outcomes = await asyncio.gather(
        *(licensing.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(2))
    )
    assert sorted(activation.newly_activated for activation in outcomes) == [False, True]


async def test_batch_activation_answers_for_each_sn(licensing: Licensing, app: AppRecord) -> None:
    await licensing.add_licences(app.biz_name, MODEL, AUDIO, 2)
    results = await licensing.batch_activate(
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
        await licensing.batch_activate("nobody", MODEL, AUDIO, ["P_dev04"])
    with refused(errors.MODEL_ID_INVALID):
        await licensing.batch_activate(app.biz_name, "bad model", AUDIO, ["P_dev04"])


# Registration.


async def test_a_device_registers_once_with_a_fresh_ticket(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    await activated(licensing, app, "P_dev01")
    assert not await licensing.is_registered("P_dev01")
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    assert (ticket.sn, ticket.expires_at) == ("P_dev01", clock.utc() + timedelta(minutes=5))
    clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    registration = await licensing.register_device("P_dev01", ticket.token)
    assert (registration.biz_name, registration.sn, registration.registered_at, registration.replaced) == (
        app.biz_name,
        "P_dev01",
        clock.utc(),
        False,
    )
    assert await licensing.is_registered("P_dev01")
    device = await licensing.authenticate_device("P_dev01", registration.device_secret)
    assert (device.biz_name, device.model_id, device.sn, device.licence_type) == (
        app.biz_name,
        MODEL,
        "P_dev01",
        AUDIO,
    )
    with refused(errors.SN_TICKET_USED):
        await licensing.register_device("P_dev01", ticket.token)
    # Neither credential is stored as given.
    async with engine.connect() as connection:
        stored = [
            " ".join(str(value) for value in row)
            for table in (sn_tickets, registrations)
            for row in await connection.execute(select(table))
        ]
    assert not any(ticket.token in row or registration.device_secret in row for row in stored)


async def test_a_ticket_expires_after_five_minutes(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    clock.advance(timedelta(minutes=5))
    with refused(errors.SN_TICKET_EXPIRED):
        await licensing.register_device("P_dev01", ticket.token)
    assert not await licensing.is_registered("P_dev01")


async def test_a_ticket_registers_only_its_own_device(licensing: Licensing, app: AppRecord) -> None:
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.SN_TICKET_FOREIGN):
        await licensing.register_device("P_dev02", ticket.token)
    with refused(errors.SN_TICKET_UNKNOWN):
        await licensing.register_device("P_dev02", "not-a-ticket")
    # The refused attempts did not spend it.
    await licensing.register_device("P_dev01", ticket.token)


async def test_racing_registrations_with_one_ticket_succeed_once(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    outcomes = await asyncio.gather(
        *(licensing.register_device("P_dev01", ticket.token) for _ in range(5)), return_exceptions=True
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    [success] = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert all(isinstance(error, ParleyError) and error.code == -10008 for error in failures), failures
    assert (await licensing.authenticate_device("P_dev01", success.device_secret)).sn == "P_dev01"
    assert (await staged_events(engine)).count("DeviceRegistered") == 1


async def test_a_device_never_activated_cannot_register(licensing: Licensing, app: AppRecord) -> None:
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.register_device("P_dev01", "any-ticket")
    # Nor can another app's device get a ticket from this app.
    other, _ = await licensing.create_app("Other", AppSettings())
    await activated(licensing, other, "P_dev02")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.issue_sn_ticket(app.biz_name, "P_dev02")
    assert not await licensing.is_registered("P_dev01")


async def test_registering_again_replaces_the_secret(licensing: Licensing, app: AppRecord) -> None:
    old_secret = await registered(licensing, app, "P_dev01")
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    registration = await licensing.register_device("P_dev01", ticket.token)
    assert registration.replaced
    assert registration.device_secret != old_secret
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.authenticate_device("P_dev01", old_secret)
    await licensing.authenticate_device("P_dev01", registration.device_secret)


async def test_only_a_registered_device_with_its_secret_authenticates(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.authenticate_device("P_dev01", "anything")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.authenticate_device("P_nobody", "anything")
    secret = await registered(licensing, app, "P_dev02")
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.authenticate_device("P_dev01", secret)


# Authorisation.


async def test_paging_returns_every_authorised_user_exactly_once(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    open_ids = [f"user_{index:02d}" for index in range(23)]
    for open_id in open_ids:
        await licensing.set_authorisation(app.biz_name, "P_dev01", open_id, True)
    pages = [await licensing.list_authorised_users("P_dev01", offset, 10) for offset in (0, 10, 20, 30)]
    assert [len(page) for page, _ in pages] == [10, 10, 3, 0]
    assert {total for _, total in pages} == {23}
    assert [user.open_id for page, _ in pages for user in page] == open_ids


async def test_users_added_while_paging_do_not_repeat_earlier_pages(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    for index in range(23):
        await licensing.set_authorisation(app.biz_name, "P_dev01", f"user_{index:02d}", True)
    seen: list[str] = []
    while page := (await licensing.list_authorised_users("P_dev01", len(seen), 10))[0]:
        seen += [user.open_id for user in page]
        if len(seen) <= 20:
            # Other users authorise the device between the device's requests, some at the same moment.
            await asyncio.gather(
                *(
                    licensing.set_authorisation(app.biz_name, "P_dev01", f"late_{len(seen)}_{index}", True)
                    for index in range(3)
                )
            )
    assert len(seen) == len(set(seen)) == 23 + 2 * 3


async def test_pages_hold_at_most_ten_users_and_skip_revoked_ones(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    for index in range(12):
        await licensing.set_authorisation(app.biz_name, "P_dev01", f"user_{index:02d}", True)
    await licensing.set_authorisation(app.biz_name, "P_dev01", "user_00", False)
    page, total = await licensing.list_authorised_users("P_dev01", 0, 50)
    assert (len(page), total) == (10, 11)
    assert page[0].open_id == "user_01"
    assert (await licensing.list_authorised_users("P_dev01"))[0] == page
    for offset, limit in ((0, 0), (-1, 10)):
        with refused(INVALID_ARGUMENT):
            await licensing.list_authorised_users("P_dev01", offset, limit)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.list_authorised_users("P_dev02")


async def test_authorising_needs_a_device_of_the_app_and_a_good_open_id(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    other, _ = await licensing.create_app("Other", AppSettings())
    await activated(licensing, other, "P_dev02")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.set_authorisation(app.biz_name, "P_dev02", "user_1", True)
    await activated(licensing, app, "P_dev01")
    with refused(errors.OPEN_ID_MALFORMED):
        await licensing.set_authorisation(app.biz_name, "P_dev01", "user 1", True)
    with refused(errors.APP_NOT_FOUND):
        await licensing.set_authorisation("nobody", "P_dev01", "user_1", True)
    record = await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    assert (record.biz_name, record.sn, record.open_id, record.status, record.updated_at) == (
        app.biz_name,
        "P_dev01",
        "user_1",
        1,
        clock.utc(),
    )


async def test_a_user_lists_the_devices_it_authorised(licensing: Licensing, app: AppRecord) -> None:
    await activated(licensing, app, "P_dev01", licences=3)
    await licensing.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    await licensing.activate(app.biz_name, MODEL, "P_dev03", AUDIO)
    for sn in ("P_dev02", "P_dev01", "P_dev03"):
        await licensing.set_authorisation(app.biz_name, sn, "user_1", True)
    await licensing.set_authorisation(app.biz_name, "P_dev03", "user_1", False)
    await licensing.set_authorisation(app.biz_name, "P_dev03", "user_2", True)
    devices = await licensing.list_authorised_devices(app.biz_name, "user_1")
    assert [(device.sn, device.status) for device in devices] == [("P_dev02", 1), ("P_dev01", 1)]
    assert await licensing.list_authorised_devices(app.biz_name, "user_9") == []
    with refused(errors.OPEN_ID_MALFORMED):
        await licensing.list_authorised_devices(app.biz_name, "")


# Device calls.


async def test_a_device_call_is_checked_in_the_seed_order(licensing: Licensing, app: AppRecord) -> None:
    other, _ = await licensing.create_app("Other", AppSettings())
    await activated(licensing, other, "Q_dev01")
    await licensing.set_authorisation(other.biz_name, "Q_dev01", "other_user", True)
    with refused(errors.DEVICE_ID_INVALID):  # -2: not activated
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    await activated(licensing, app, "P_dev01")
    with refused(errors.DEVICE_ID_INVALID):  # -2: activated, not registered
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    ticket = await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.register_device("P_dev01", ticket.token)
    with refused(errors.MODEL_ID_MISMATCH):  # -17, before the open_id is looked at
        await licensing.check_device_call("P_dev01", "bad open id", "model_2")
    with refused(errors.OPEN_ID_MALFORMED):  # -7
        await licensing.check_device_call("P_dev01", "bad open id", MODEL)
    with refused(errors.OPEN_ID_UNKNOWN):  # -20
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    with refused(errors.OPEN_ID_WRONG_APP):  # -19
        await licensing.check_device_call("P_dev01", "other_user", MODEL)
    await activated(licensing, app, "P_dev02")
    await licensing.set_authorisation(app.biz_name, "P_dev02", "user_1", True)
    with refused(errors.OPEN_ID_NOT_BOUND):  # -9: a user of the app, but not of this device
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    device = await licensing.check_device_call("P_dev01", "user_1", MODEL)
    assert (device.biz_name, device.sn, device.model_id, device.licence_type) == (
        app.biz_name,
        "P_dev01",
        MODEL,
        AUDIO,
    )
    assert await licensing.check_device_call("P_dev01", "user_1") == device
    assert await licensing.check_device_call("P_dev01", "user_1", "") == device
    await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", False)
    with refused(errors.OPEN_ID_NOT_AUTHORISED):  # -8
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.set_account_status(app.biz_name, True, event_id="e1")
    with refused(errors.ACCOUNT_IN_ARREARS):  # -15
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
    await licensing.set_account_status(app.biz_name, False, event_id="e2")
    await licensing.check_device_call("P_dev01", "user_1", MODEL)


# Account status.


async def test_account_status_applies_each_event_once(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    assert await licensing.set_account_status(app.biz_name, True, event_id="e1")
    assert not await licensing.set_account_status(app.biz_name, True, event_id="e1")
    assert await licensing.set_account_status(app.biz_name, False, event_id="e2")
    assert not await licensing.set_account_status(app.biz_name, False, event_id="e2")
    # An app this service does not (or no longer) know is recorded, not refused: the event is consumed.
    assert await licensing.set_account_status("gone", True, event_id="e3")
    async with engine.connect() as connection:
        rows = (await connection.execute(select(account_status).order_by(account_status.c.biz_name))).all()
    assert [(row.biz_name, row.in_arrears, row.last_event_id) for row in rows] == sorted(
        [(app.biz_name, False, "e2"), ("gone", True, "e3")]
    )
    with refused(INVALID_ARGUMENT):
        await licensing.set_account_status(app.biz_name, True, event_id="")


# Deleting an app.


async def test_deleting_an_app_deletes_everything_under_it(
    engine: AsyncEngine, licensing: Licensing, app: AppRecord
) -> None:
    other, _ = await licensing.create_app("Other", AppSettings())
    kept_secret = await registered(licensing, other, "Q_dev01")
    await licensing.set_authorisation(other.biz_name, "Q_dev01", "user_1", True)
    await registered(licensing, app, "P_dev01")
    await licensing.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.issue_sn_ticket(app.biz_name, "P_dev01")
    await licensing.set_account_status(app.biz_name, True, event_id="e1")

    assert await licensing.delete_app(app.biz_name) == app
    with refused(errors.APP_NOT_FOUND):
        await licensing.get_app(app.biz_name)
    with refused(errors.DEVICE_ID_INVALID):
        await licensing.check_device_call("P_dev01", "user_1", MODEL)
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
    await licensing.authenticate_device("Q_dev01", kept_secret)
    await licensing.check_device_call("Q_dev01", "user_1", MODEL)
    assert (await activated(licensing, other, "P_dev01")).newly_activated
