"""One contract for every `LicenceStore` (services/licence/store.py): each test runs on the in-memory store
the unit tests use (tests/unit/licence/fake_store.py), on SQLite and on PostgreSQL, so the fake cannot
drift from the database-backed store the service runs on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.migrations import upgrade_to_head
from services.licence.records import (
    AUTHORISED,
    NOT_AUTHORISED,
    ActivationRecord,
    AppCreated,
    AppRecord,
    AppSettings,
    AuthorisationChanged,
    AuthorisationRecord,
    DeviceActivated,
    DeviceRecord,
    LicenceType,
    PoolRecord,
)
from services.licence.store import ActivationExists, AppChanges, LicenceStore, SealedApp
from services.licence.tickets import TicketRecord
from tests.integration.licence.licence_database import empty_database, sql_store, staged_events
from tests.unit.licence.fake_store import InMemoryLicenceStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AUDIO = LicenceType.AUDIO_CALL
VIDEO = LicenceType.VIDEO_CALL


@dataclass
class Subject:
    store: LicenceStore
    # The names of the facts kept so far, in order.
    staged: Callable[[], Awaitable[list[str]]]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    if request.param == "memory":
        memory = InMemoryLicenceStore()

        async def facts() -> list[str]:
            return [type(fact).__name__ for fact in memory.facts]

        yield Subject(memory, facts)
        return
    async with empty_database(request.param, tmp_path) as database:
        engine = database.open()
        await upgrade_to_head(engine, "services.licence")
        yield Subject(sql_store(engine), lambda: staged_events(engine))


def an_app(biz_name: str, *, created_at: datetime = NOW) -> AppRecord:
    return AppRecord(
        biz_name=biz_name,
        app_id=f"PARLEY{biz_name.upper()}",
        workspace_id="default",
        name=f"App {biz_name}",
        public_key=f"key of {biz_name}",
        settings=AppSettings(),
        created_at=created_at,
        updated_at=created_at,
    )


def activation_of(biz_name: str, sn: str, model_id: str = "model_1") -> ActivationRecord:
    return ActivationRecord(biz_name, model_id, sn, AUDIO, NOW, newly_activated=False)


async def with_devices(store: LicenceStore, biz_name: str, *sns: str) -> None:
    """The app `biz_name`, created, with `sns` activated under it (audio, model_1)."""
    async with store.writing() as unit:
        await unit.add_app(SealedApp(an_app(biz_name), "sealed"))
        await unit.add_licences(biz_name, "model_1", AUDIO, len(sns) or 1)
        for sn in sns:
            assert await unit.consume_licence(biz_name, "model_1", AUDIO)
            await unit.add_activation(activation_of(biz_name, sn))


async def test_a_unit_that_raises_keeps_neither_its_changes_nor_its_facts(subject: Subject) -> None:
    app = an_app("bizA")
    with pytest.raises(RuntimeError):
        async with subject.store.writing() as unit:
            await unit.add_app(SealedApp(app, "sealed"))
            await unit.stage(AppCreated(app))
            raise RuntimeError("the rules refused")
    async with subject.store.reading() as reads:
        assert await reads.find_app("bizA") is None
    assert await subject.staged() == []


async def test_a_unit_keeps_its_changes_and_its_facts_in_order(subject: Subject) -> None:
    app = an_app("bizA")
    async with subject.store.writing() as unit:
        await unit.add_app(SealedApp(app, "sealed"))
        await unit.stage(AppCreated(app))
    await with_devices(subject.store, "bizB", "P_dev01")
    async with subject.store.writing() as unit:
        await unit.stage(DeviceActivated(replace(activation_of("bizB", "P_dev01"), newly_activated=True)))
        await unit.stage(
            AuthorisationChanged(AuthorisationRecord("bizB", "P_dev01", "user_1", AUTHORISED, NOW))
        )
    async with subject.store.reading() as reads:
        assert await reads.find_app("bizA") == app
        assert await reads.find_sealed_app("bizA") == SealedApp(app, "sealed")
    assert await subject.staged() == ["AppCreated", "DeviceActivated", "AuthorisationChanged"]


async def test_apps_are_listed_oldest_first_then_by_biz_name(subject: Subject) -> None:
    apps = [an_app("bizC"), an_app("bizA", created_at=NOW + timedelta(seconds=1)), an_app("bizB")]
    async with subject.store.writing() as unit:
        for app in apps:
            await unit.add_app(SealedApp(app, "sealed"))
    async with subject.store.reading() as reads:
        assert [app.biz_name for app in await reads.list_apps()] == ["bizB", "bizC", "bizA"]


async def test_an_update_overwrites_only_the_fields_it_names(subject: Subject) -> None:
    app = an_app("bizA")
    later = NOW + timedelta(minutes=1)
    settings = AppSettings(auto_record=True, media_proxy="proxy.example.com")
    async with subject.store.writing() as unit:
        await unit.add_app(SealedApp(app, "sealed"))
        assert await unit.update_app("bizA", AppChanges(later, name="Renamed"))
        assert await unit.update_app("bizA", AppChanges(later, settings=settings))
        assert not await unit.update_app("nobody", AppChanges(later, name="x"))
    async with subject.store.reading() as reads:
        assert await reads.find_sealed_app("bizA") == SealedApp(
            replace(app, name="Renamed", settings=settings, updated_at=later), "sealed"
        )
    async with subject.store.writing() as unit:
        assert await unit.update_app(
            "bizA", AppChanges(later, public_key="new key", private_key_sealed="new")
        )
        sealed = await unit.find_sealed_app("bizA")
    assert sealed is not None
    assert (sealed.app.public_key, sealed.app.name, sealed.private_key_sealed) == (
        "new key",
        "Renamed",
        "new",
    )


async def test_pools_grow_and_give_out_what_they_hold(subject: Subject) -> None:
    async with subject.store.writing() as unit:
        await unit.add_app(SealedApp(an_app("bizA"), "sealed"))
        await unit.add_licences("bizA", "model_1", VIDEO, 1)
        await unit.add_licences("bizA", "model_1", AUDIO, 1)
        await unit.add_licences("bizA", "model_1", AUDIO, 1)
        await unit.add_licences("bizA", "model_0", VIDEO, 1)
        taken = [await unit.consume_licence("bizA", "model_1", AUDIO) for _ in range(3)]
        assert not await unit.consume_licence("bizA", "model_9", AUDIO)
    assert taken == [True, True, False]
    async with subject.store.reading() as reads:
        assert await reads.list_pools("bizA") == [
            PoolRecord("bizA", "model_0", VIDEO, 1, 0),
            PoolRecord("bizA", "model_1", AUDIO, 2, 2),
            PoolRecord("bizA", "model_1", VIDEO, 1, 0),
        ]
        assert await reads.find_pool("bizA", "model_9", AUDIO) is None


async def test_racing_units_take_exactly_the_licences_there_are(subject: Subject) -> None:
    async with subject.store.writing() as unit:
        await unit.add_app(SealedApp(an_app("bizA"), "sealed"))
        await unit.add_licences("bizA", "model_1", AUDIO, 5)

    async def take() -> bool:
        async with subject.store.writing() as unit:
            return await unit.consume_licence("bizA", "model_1", AUDIO)

    assert sorted(await asyncio.gather(*(take() for _ in range(10)))) == [False] * 5 + [True] * 5
    async with subject.store.reading() as reads:
        pool = await reads.find_pool("bizA", "model_1", AUDIO)
    assert pool is not None and pool.used == 5


async def test_a_second_activation_of_an_sn_is_refused_and_its_unit_gives_the_licence_back(
    subject: Subject,
) -> None:
    await with_devices(subject.store, "bizA", "P_dev01")
    async with subject.store.writing() as unit:
        await unit.add_licences("bizA", "model_1", AUDIO, 1)
    with pytest.raises(ActivationExists):
        async with subject.store.writing() as unit:
            assert await unit.consume_licence("bizA", "model_1", AUDIO)
            await unit.add_activation(activation_of("bizA", "P_dev01"))
    async with subject.store.reading() as reads:
        assert await reads.find_activation("P_dev01") == activation_of("bizA", "P_dev01")
        pool = await reads.find_pool("bizA", "model_1", AUDIO)
    assert pool is not None and (pool.total, pool.used) == (2, 1)


async def test_a_ticket_is_spent_once_and_not_once_expired(subject: Subject) -> None:
    await with_devices(subject.store, "bizA", "P_dev01")
    fresh = TicketRecord("a" * 64, "P_dev01", "PARLEYBIZA", NOW + timedelta(minutes=5))
    expiring = TicketRecord("b" * 64, "P_dev01", "PARLEYBIZA", NOW)
    async with subject.store.writing() as unit:
        await unit.add_ticket("bizA", fresh)
        await unit.add_ticket("bizA", expiring)
    async with subject.store.writing() as unit:
        assert not await unit.spend_ticket("b" * 64, NOW)
        assert not await unit.spend_ticket("c" * 64, NOW)
        assert await unit.spend_ticket("a" * 64, NOW)
        assert not await unit.spend_ticket("a" * 64, NOW)
    async with subject.store.reading() as reads:
        assert await reads.find_ticket("a" * 64) == replace(fresh, used_at=NOW)
        assert await reads.find_ticket("b" * 64) == expiring
        assert await reads.find_ticket("c" * 64) is None


async def test_registering_again_replaces_the_secret(subject: Subject) -> None:
    await with_devices(subject.store, "bizA", "P_dev01", "P_dev02")
    async with subject.store.writing() as unit:
        assert not await unit.save_registration("P_dev01", "1" * 64, NOW)
        assert await unit.save_registration("P_dev01", "2" * 64, NOW)
    async with subject.store.reading() as reads:
        registered = await reads.find_registered_device("P_dev01")
        assert (await reads.is_registered("P_dev01"), await reads.is_registered("P_dev02")) == (True, False)
        assert await reads.find_registered_device("P_dev02") is None
    assert registered is not None
    assert registered.device == DeviceRecord("bizA", "model_1", "P_dev01", AUDIO)
    assert registered.secret_hash == "2" * 64


async def test_users_are_known_per_app(subject: Subject) -> None:
    await with_devices(subject.store, "bizA")
    await with_devices(subject.store, "bizB")
    async with subject.store.writing() as unit:
        await unit.add_user("bizA", "user_1", NOW)
        await unit.add_user("bizA", "user_1", NOW)
    async with subject.store.reading() as reads:
        assert await reads.user_known("user_1", "bizA")
        assert await reads.user_known("user_1")
        assert not await reads.user_known("user_1", "bizB")
        assert not await reads.user_known("user_2")


async def test_authorisations_keep_their_first_place_and_pages_hold_the_authorised(subject: Subject) -> None:
    await with_devices(subject.store, "bizA", "P_dev01", "P_dev02")

    def authorisation(sn: str, open_id: str, status: int, minutes: int = 0) -> AuthorisationRecord:
        return AuthorisationRecord("bizA", sn, open_id, status, NOW + timedelta(minutes=minutes))

    async with subject.store.writing() as unit:
        for open_id in ("user_1", "user_2", "user_3", "user_4"):
            await unit.save_authorisation(authorisation("P_dev01", open_id, AUTHORISED))
        await unit.save_authorisation(authorisation("P_dev02", "user_2", AUTHORISED))
        await unit.save_authorisation(authorisation("P_dev01", "user_1", NOT_AUTHORISED, 1))
        await unit.save_authorisation(authorisation("P_dev01", "user_3", NOT_AUTHORISED, 1))
        await unit.save_authorisation(authorisation("P_dev01", "user_1", AUTHORISED, 2))
    async with subject.store.reading() as reads:
        page, total = await reads.authorised_users("P_dev01", 0, 10)
        assert (page, total) == (
            [
                authorisation("P_dev01", "user_1", AUTHORISED, 2),
                authorisation("P_dev01", "user_2", AUTHORISED),
                authorisation("P_dev01", "user_4", AUTHORISED),
            ],
            3,
        )
        assert await reads.authorised_users("P_dev01", 1, 1) == ([page[1]], 3)
        assert await reads.authorised_users("P_dev01", 3, 10) == ([], 3)
        assert await reads.authorised_devices("bizA", "user_2") == [
            authorisation("P_dev01", "user_2", AUTHORISED),
            authorisation("P_dev02", "user_2", AUTHORISED),
        ]
        assert await reads.authorised_devices("bizA", "user_3") == []
        statuses = [await reads.authorisation_status("P_dev01", open_id) for open_id in ("user_3", "user_9")]
        assert statuses == [NOT_AUTHORISED, None]


async def test_each_account_status_event_applies_once_even_for_an_unknown_app(subject: Subject) -> None:
    async with subject.store.writing() as unit:
        assert await unit.apply_account_status("bizA", True, "e1", NOW)
        assert not await unit.apply_account_status("bizA", False, "e1", NOW)
    async with subject.store.reading() as reads:
        assert await reads.in_arrears("bizA")
        assert not await reads.in_arrears("bizB")
    async with subject.store.writing() as unit:
        assert await unit.apply_account_status("bizA", False, "e2", NOW)
    async with subject.store.reading() as reads:
        assert not await reads.in_arrears("bizA")


async def test_deleting_an_app_deletes_everything_under_it_and_nothing_else(subject: Subject) -> None:
    for biz_name, sn in (("bizA", "P_dev01"), ("bizB", "Q_dev01")):
        await with_devices(subject.store, biz_name, sn)
        async with subject.store.writing() as unit:
            await unit.add_ticket(biz_name, TicketRecord(sn.ljust(64, "0"), sn, "x", NOW))
            assert not await unit.save_registration(sn, "1" * 64, NOW)
            await unit.add_user(biz_name, f"user_of_{biz_name}", NOW)
            await unit.save_authorisation(
                AuthorisationRecord(biz_name, sn, f"user_of_{biz_name}", AUTHORISED, NOW)
            )
            assert await unit.apply_account_status(biz_name, True, "e1", NOW)
    async with subject.store.writing() as unit:
        await unit.delete_app("bizA")
    async with subject.store.reading() as reads:
        for kept, (biz_name, sn) in ((False, ("bizA", "P_dev01")), (True, ("bizB", "Q_dev01"))):
            assert [
                await reads.find_app(biz_name) is not None,
                await reads.list_pools(biz_name) != [],
                await reads.find_activation(sn) is not None,
                await reads.find_ticket(sn.ljust(64, "0")) is not None,
                await reads.is_registered(sn),
                await reads.user_known(f"user_of_{biz_name}"),
                await reads.authorisation_status(sn, f"user_of_{biz_name}") is not None,
                await reads.in_arrears(biz_name),
            ] == [kept] * 8, biz_name
