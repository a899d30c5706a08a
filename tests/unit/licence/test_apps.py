"""The rules of call apps, their keys and signatures (services/licence/apps.py) on the in-memory store."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from services.core.errors import INVALID_ARGUMENT
from services.licence import errors, keys, signatures
from services.licence.apps import VERIFYING_KEY_TTL
from services.licence.keys import MasterKey
from services.licence.licensing import Licensing
from services.licence.records import AppChanged, AppCreated, AppRecord, AppSettings
from tests.clock import FakeClock
from tests.unit.licence.licence_support import MODEL, StoreWithFacts, activated, refused, registered


async def test_creating_an_app_generates_its_ids_and_a_key_pair_the_customer_signs_with(
    licensing: Licensing, store: StoreWithFacts, clock: FakeClock
) -> None:
    app, private_key_b64 = await licensing.apps.create_app("  Door bells ", AppSettings(auto_record=True))
    assert re.fullmatch(r"biz[0-9a-f]{12}", app.biz_name)
    assert re.fullmatch(r"PARLEY[0-9A-F]{13}", app.app_id)
    assert (app.workspace_id, app.name, app.settings) == (
        "default",
        "Door bells",
        AppSettings(auto_record=True),
    )
    assert app.created_at == app.updated_at == clock.utc()
    private_key = keys.load_private_key(private_key_b64)
    assert keys.export_public_key(private_key.public_key()) == app.public_key
    expire_time_ms = int((clock.utc() + timedelta(minutes=5)).timestamp() * 1000)
    signed = signatures.sign(private_key, app.biz_name, app.app_id, "default", "alice", expire_time_ms)
    assert (
        await licensing.apps.verify_signature(app.biz_name, "alice", signed)
    ).expire_time_ms == expire_time_ms
    assert store.facts == [AppCreated(app)]
    assert await licensing.apps.list_apps() == [app]


async def test_apps_are_listed_oldest_first(licensing: Licensing, clock: FakeClock) -> None:
    first, _ = await licensing.apps.create_app("First", AppSettings())
    clock.advance(timedelta(seconds=1))
    second, _ = await licensing.apps.create_app("Second", AppSettings())
    assert await licensing.apps.list_apps() == [first, second]
    assert await licensing.apps.get_app(second.biz_name) == second


async def test_renaming_keeps_the_settings_and_configuring_keeps_the_name(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    clock.advance(timedelta(seconds=1))
    renamed = await licensing.apps.update_app(app.biz_name, name=" Renamed ")
    assert (renamed.name, renamed.settings, renamed.updated_at) == ("Renamed", AppSettings(), clock.utc())
    settings = AppSettings(
        auto_record=True,
        record_callback_url="https://example.com/record",
        room_status_callback_url="http://10.0.0.1:8080/rooms",
        media_proxy="proxy.example.com:3478",
    )
    configured = await licensing.apps.update_app(app.biz_name, settings=settings)
    assert (configured.name, configured.settings, configured.created_at) == (
        "Renamed",
        settings,
        app.created_at,
    )
    assert await licensing.apps.get_app(app.biz_name) == configured
    assert store.facts[1:] == [AppChanged(renamed), AppChanged(configured)]


@pytest.mark.parametrize(
    "settings",
    [
        AppSettings(record_callback_url="ftp://example.com/x"),
        AppSettings(record_callback_url="example.com/record"),
        AppSettings(record_callback_url="https://example.com/" + "x" * 2048),
        AppSettings(room_status_callback_url="https://"),
        AppSettings(room_status_callback_url="https://example.com:99999/"),
        AppSettings(room_status_callback_url="https://example.com:0/"),
        AppSettings(room_status_callback_url="https://example.com/a b"),
        AppSettings(media_proxy="https://proxy.example.com"),
        AppSettings(media_proxy="proxy example"),
        AppSettings(media_proxy="p" * 256),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, settings: AppSettings
) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.apps.create_app("App", settings)
    with refused(INVALID_ARGUMENT):
        await licensing.apps.update_app(app.biz_name, name="Renamed", settings=settings)
    assert await licensing.apps.list_apps() == [app]
    assert store.facts == [AppCreated(app)]


@pytest.mark.parametrize("name", ["", "   ", "x" * 129])
async def test_an_app_needs_a_name_of_1_to_128_characters(
    licensing: Licensing, app: AppRecord, name: str
) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.apps.create_app(name, AppSettings())
    with refused(INVALID_ARGUMENT):
        await licensing.apps.update_app(app.biz_name, name=name)
    assert (await licensing.apps.update_app(app.biz_name, name="x" * 128)).name == "x" * 128


async def test_rotating_the_key_stops_the_old_signatures_at_once(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    old = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    # Verified once, so that this process holds the old verifying key when the key is rotated.
    await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)
    clock.advance(timedelta(seconds=1))
    rotated, private_key_b64 = await licensing.apps.rotate_key(app.biz_name)
    assert rotated.public_key != app.public_key
    assert (rotated.app_id, rotated.name, rotated.updated_at) == (app.app_id, app.name, clock.utc())
    assert await licensing.apps.get_app(app.biz_name) == rotated
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)
    new = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    customer_key = keys.load_private_key(private_key_b64)
    assert new.signature == signatures.sign(
        customer_key, app.biz_name, app.app_id, "default", "alice", new.expire_time_ms
    )
    assert store.facts[-1] == AppChanged(rotated, key_rotated=True)


async def test_another_replicas_rotation_stops_the_old_signatures_here_once_the_kept_key_is_stale(
    store: StoreWithFacts, master_key: MasterKey, licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    other_replica = Licensing(store, master_key, clock=clock.utc)
    old = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)
    await other_replica.apps.rotate_key(app.biz_name)
    clock.advance(VERIFYING_KEY_TTL - timedelta(milliseconds=1))
    await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)
    clock.advance(timedelta(milliseconds=1))
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.apps.verify_signature(app.biz_name, "alice", old.signature)


async def test_a_deleted_apps_signatures_fail_at_once(licensing: Licensing, app: AppRecord) -> None:
    issued = await licensing.apps.issue_signature(app.biz_name, "alice", "24h")
    await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)
    await licensing.apps.delete_app(app.biz_name)
    with refused(errors.SIGNATURE_UNKNOWN_APP):
        await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)


async def test_the_key_is_revealed_again_as_it_was_answered(licensing: Licensing) -> None:
    app, created_key = await licensing.apps.create_app("Doorbells", AppSettings())
    assert await licensing.apps.reveal_key(app.biz_name) == (app, created_key)
    rotated, rotated_key = await licensing.apps.rotate_key(app.biz_name)
    assert await licensing.apps.reveal_key(app.biz_name) == (rotated, rotated_key)
    with refused(errors.APP_NOT_FOUND):
        await licensing.apps.reveal_key("biz_missing")


async def test_signatures_verify_for_their_uid_and_app_until_they_expire(
    licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    issued = await licensing.apps.issue_signature(app.biz_name, "alice", "3d")
    assert issued.expire_time_ms == int((clock.utc() + timedelta(days=3)).timestamp() * 1000)
    verified = await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)
    assert (verified.app_id, verified.workspace_id) == (app.app_id, "default")
    with refused(errors.SIGNATURE_WRONG_UID):
        await licensing.apps.verify_signature(app.biz_name, "bob", issued.signature)
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    with refused(errors.SIGNATURE_MALFORMED):
        await licensing.apps.verify_signature(other.biz_name, "alice", issued.signature)
    with refused(INVALID_ARGUMENT):
        await licensing.apps.issue_signature(app.biz_name, "alice", "1y")
    with refused(errors.UID_INVALID):
        await licensing.apps.issue_signature(app.biz_name, "alice smith", "24h")
    clock.advance(timedelta(days=3) - timedelta(milliseconds=1))
    await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)
    clock.advance(timedelta(milliseconds=1))
    with refused(errors.SIGNATURE_EXPIRED):
        await licensing.apps.verify_signature(app.biz_name, "alice", issued.signature)


async def test_another_master_key_opens_no_stored_private_key(
    store: StoreWithFacts, licensing: Licensing, app: AppRecord, clock: FakeClock
) -> None:
    stranger = Licensing(store, keys.MasterKey(b"s" * 32), clock=clock.utc)
    with refused(errors.PRIVATE_KEY_UNREADABLE):
        await stranger.apps.issue_signature(app.biz_name, "alice", "24h")


async def test_unknown_apps_are_not_found_and_their_signatures_fail(
    licensing: Licensing, store: StoreWithFacts
) -> None:
    for refusal in (
        licensing.apps.get_app("nobody"),
        licensing.apps.update_app("nobody", name="x"),
        licensing.apps.rotate_key("nobody"),
        licensing.apps.delete_app("nobody"),
        licensing.apps.issue_signature("nobody", "alice", "24h"),
    ):
        with refused(errors.APP_NOT_FOUND):
            await refusal
    with refused(errors.SIGNATURE_UNKNOWN_APP):
        await licensing.apps.verify_signature("nobody", "alice", "c2ln")
    assert store.facts == []


async def test_deleting_an_app_takes_everything_under_it_and_frees_its_devices(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    kept_secret = await registered(licensing, other, "Q_dev01")
    await licensing.authorisations.set_authorisation(other.biz_name, "Q_dev01", "user_1", True)
    await registered(licensing, app, "P_dev01")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")

    assert await licensing.apps.delete_app(app.biz_name) == app
    assert store.facts[-1] == AppChanged(app, deleted=True)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.list_pools(app.biz_name)
    with refused(errors.DEVICE_ID_INVALID):
        await licensing.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    assert not await licensing.devices.is_registered("P_dev01")
    # The other app is untouched; the freed sn may be activated again, under any app.
    await licensing.devices.authenticate_device("Q_dev01", kept_secret)
    await licensing.authorisations.check_device_call("Q_dev01", "user_1", MODEL)
    assert (await activated(licensing, other, "P_dev01")).newly_activated
