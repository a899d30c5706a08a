"""The rules of users' authorisations and of the check before a device call (services/licence/
authorisations.py) on the in-memory store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.core.errors import INVALID_ARGUMENT, ErrorKind
from services.licence import errors
from services.licence.licensing import Licensing
from services.licence.records import (
    AppRecord,
    AppSettings,
    AuthorisationChanged,
    AuthorisationRecord,
    DeviceRecord,
)
from tests.clock import FakeClock
from tests.unit.licence.licence_support import (
    AUDIO,
    MODEL,
    StoreWithFacts,
    activated,
    refused,
    registered,
)

# Authorising and listing.


async def test_authorising_and_revoking_stage_the_pushes_for_the_device(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    await activated(licensing, app, "P_dev01")
    granted = await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    assert granted == AuthorisationRecord(app.biz_name, "P_dev01", "user_1", 1, clock.utc())
    clock.advance(timedelta(seconds=1))
    revoked = await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", False)
    assert revoked == AuthorisationRecord(app.biz_name, "P_dev01", "user_1", 0, clock.utc())
    assert store.facts_of(AuthorisationChanged) == [
        AuthorisationChanged(granted),
        AuthorisationChanged(revoked),
    ]


async def test_authorising_needs_a_device_of_the_app_and_a_good_open_id(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
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
    with refused(errors.SN_ILLEGAL_CHARACTERS):
        await licensing.authorisations.set_authorisation(app.biz_name, "P dev01", "user_1", True)
    with refused(errors.APP_NOT_FOUND):
        await licensing.authorisations.set_authorisation("nobody", "P_dev01", "user_1", True)
    assert store.facts_of(AuthorisationChanged) == []


async def device_authorised_by(licensing: Licensing, app: AppRecord, users: int) -> list[str]:
    """Activate P_dev01 and have user_00, user_01, ... authorise it in that order; their open_ids."""
    await activated(licensing, app, "P_dev01")
    open_ids = [f"user_{index:02d}" for index in range(users)]
    for open_id in open_ids:
        await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", open_id, True)
    return open_ids


async def test_a_device_pages_its_users_ten_at_a_time_with_the_total(
    licensing: Licensing, app: AppRecord
) -> None:
    open_ids = await device_authorised_by(licensing, app, 23)
    pages = [
        await licensing.authorisations.list_authorised_users("P_dev01", offset, 50)
        for offset in (0, 10, 20, 30)
    ]
    assert [(len(page), total) for page, total in pages] == [(10, 23), (10, 23), (3, 23), (0, 23)]
    assert [user.open_id for page, _ in pages for user in page] == open_ids
    assert (await licensing.authorisations.list_authorised_users("P_dev01", 5, 3))[0] == pages[0][0][5:8]


async def test_users_added_while_paging_do_not_repeat_earlier_pages(
    licensing: Licensing, app: AppRecord
) -> None:
    await device_authorised_by(licensing, app, 23)
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


async def test_revoked_users_leave_the_pages_and_come_back_in_their_old_place(
    licensing: Licensing, app: AppRecord
) -> None:
    await device_authorised_by(licensing, app, 12)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_00", False)
    page, total = await licensing.authorisations.list_authorised_users("P_dev01")
    assert (len(page), total, page[0].open_id) == (10, 11, "user_01")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_00", True)
    page, total = await licensing.authorisations.list_authorised_users("P_dev01")
    assert (total, page[0].open_id) == (12, "user_00")


async def test_paging_needs_a_sane_window_and_an_activated_device(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    for offset, limit in ((0, 0), (-1, 10)):
        with refused(INVALID_ARGUMENT):
            await licensing.authorisations.list_authorised_users("P_dev01", offset, limit)
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.authorisations.list_authorised_users("P_dev02")
    assert await licensing.authorisations.list_authorised_users("P_dev01") == ([], 0)


async def test_a_user_lists_the_devices_it_authorises(licensing: Licensing, app: AppRecord) -> None:
    await activated(licensing, app, "P_dev01", licences=3)
    for sn in ("P_dev02", "P_dev03"):
        await licensing.devices.activate(app.biz_name, MODEL, sn, AUDIO)
    for sn in ("P_dev02", "P_dev01", "P_dev03"):
        await licensing.authorisations.set_authorisation(app.biz_name, sn, "user_1", True)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev03", "user_1", False)
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev03", "user_2", True)
    devices = await licensing.authorisations.list_authorised_devices(app.biz_name, "user_1")
    assert [device.sn for device in devices] == ["P_dev02", "P_dev01"]
    assert await licensing.authorisations.list_authorised_devices(app.biz_name, "user_9") == []
    with refused(errors.OPEN_ID_MALFORMED):
        await licensing.authorisations.list_authorised_devices(app.biz_name, "")
    with refused(errors.APP_NOT_FOUND):
        await licensing.authorisations.list_authorised_devices("nobody", "user_1")


# The check before a device call: each seed code from its own situation. P_dev01 of `app` is registered
# and authorised by user_1; user_2 is a user of `app` through another device; other_user is of another app.


@pytest.fixture
async def calling(licensing: Licensing, app: AppRecord) -> Licensing:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, other, "Q_dev01")
    await licensing.authorisations.set_authorisation(other.biz_name, "Q_dev01", "other_user", True)
    await registered(licensing, app, "P_dev01")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", True)
    await activated(licensing, app, "P_dev02")
    await licensing.authorisations.set_authorisation(app.biz_name, "P_dev02", "user_2", True)
    return licensing


async def test_an_authorised_user_may_be_called(calling: Licensing, app: AppRecord) -> None:
    device = DeviceRecord(app.biz_name, MODEL, "P_dev01", AUDIO)
    assert await calling.authorisations.check_device_call("P_dev01", "user_1", MODEL) == device
    # proto3 cannot tell an empty model_id from an absent one: neither is checked.
    assert await calling.authorisations.check_device_call("P_dev01", "user_1", "") == device
    assert await calling.authorisations.check_device_call("P_dev01", "user_1") == device


@pytest.mark.parametrize(
    ("sn", "open_id", "model_id", "kind", "code"),
    [
        ("P_dev09", "user_1", MODEL, errors.DEVICE_ID_INVALID, -2),  # never activated
        ("P_dev02", "user_2", MODEL, errors.DEVICE_ID_INVALID, -2),  # activated, not registered
        ("P_dev01", "user_1", "model_2", errors.MODEL_ID_MISMATCH, -17),
        ("P_dev01", "user 1", MODEL, errors.OPEN_ID_MALFORMED, -7),
        ("P_dev01", "stranger", MODEL, errors.OPEN_ID_UNKNOWN, -20),
        ("P_dev01", "other_user", MODEL, errors.OPEN_ID_WRONG_APP, -19),
        ("P_dev01", "user_2", MODEL, errors.OPEN_ID_NOT_BOUND, -9),
    ],
)
async def test_a_call_is_refused_with_the_seed_code_of_its_situation(
    calling: Licensing, sn: str, open_id: str, model_id: str, kind: ErrorKind, code: int
) -> None:
    with refused(kind):
        await calling.authorisations.check_device_call(sn, open_id, model_id)
    assert kind.code == code


async def test_a_revoked_user_is_minus_8(calling: Licensing, app: AppRecord) -> None:
    await calling.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_1", False)
    with refused(errors.OPEN_ID_NOT_AUTHORISED):
        await calling.authorisations.check_device_call("P_dev01", "user_1", MODEL)


async def test_an_app_in_arrears_is_minus_15_until_billing_says_otherwise(
    calling: Licensing, app: AppRecord
) -> None:
    await calling.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    with refused(errors.ACCOUNT_IN_ARREARS):
        await calling.authorisations.check_device_call("P_dev01", "user_1", MODEL)
    await calling.authorisations.set_account_status(app.biz_name, False, event_id="e2")
    await calling.authorisations.check_device_call("P_dev01", "user_1", MODEL)


async def test_the_checks_run_in_the_seed_order(calling: Licensing, app: AppRecord) -> None:
    """With every fault at once, each check's code shows only once the faults checked before it are gone:
    -2, -17, -7, -20 / -19, -9, -8, -15."""
    await calling.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    steps: list[tuple[ErrorKind, str, str, str]] = [
        (errors.DEVICE_ID_INVALID, "P_dev02", "bad open id", "model_2"),
        (errors.MODEL_ID_MISMATCH, "P_dev01", "bad open id", "model_2"),
        (errors.OPEN_ID_MALFORMED, "P_dev01", "bad open id", MODEL),
        (errors.OPEN_ID_UNKNOWN, "P_dev01", "stranger", MODEL),
        (errors.OPEN_ID_WRONG_APP, "P_dev01", "other_user", MODEL),
        (errors.OPEN_ID_NOT_BOUND, "P_dev01", "user_2", MODEL),
    ]
    for kind, sn, open_id, model_id in steps:
        with refused(kind):
            await calling.authorisations.check_device_call(sn, open_id, model_id)
    await calling.authorisations.set_authorisation(app.biz_name, "P_dev01", "user_2", False)
    with refused(errors.OPEN_ID_NOT_AUTHORISED):
        await calling.authorisations.check_device_call("P_dev01", "user_2", MODEL)
    with refused(errors.ACCOUNT_IN_ARREARS):
        await calling.authorisations.check_device_call("P_dev01", "user_1", MODEL)


# Account status.


async def test_each_account_status_event_applies_once(licensing: Licensing, app: AppRecord) -> None:
    assert await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    assert not await licensing.authorisations.set_account_status(app.biz_name, True, event_id="e1")
    assert await licensing.authorisations.set_account_status(app.biz_name, False, event_id="e2")
    # An app this service does not (or no longer) know is recorded, not refused: the event is consumed.
    assert await licensing.authorisations.set_account_status("gone", True, event_id="e3")
    with refused(INVALID_ARGUMENT):
        await licensing.authorisations.set_account_status(app.biz_name, True, event_id="")
