"""The rules of device licences, activation and registration (services/licence/devices.py) on the
in-memory store, whose operations interleave like a database's so that racing requests meet."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.core.errors import INVALID_ARGUMENT, ErrorKind, ParleyError
from services.licence import errors
from services.licence.licensing import Licensing
from services.licence.records import (
    ActivationRecord,
    AppRecord,
    AppSettings,
    DeviceActivated,
    DeviceRecord,
    DeviceRegistered,
)
from tests.clock import FakeClock
from tests.unit.licence.licence_support import (
    AUDIO,
    MODEL,
    VIDEO,
    StoreWithFacts,
    activated,
    refused,
    registered,
)

# Licence pools.


async def test_licences_add_up_in_one_pool_per_product_and_type(licensing: Licensing, app: AppRecord) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 3)
    pool = await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 2)
    assert (pool.total, pool.used) == (5, 0)
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.devices.add_licences(app.biz_name, "model_0", AUDIO, 1)
    assert [
        (p.model_id, p.licence_type, p.total) for p in await licensing.devices.list_pools(app.biz_name)
    ] == [
        ("model_0", AUDIO, 1),
        (MODEL, AUDIO, 5),
        (MODEL, VIDEO, 1),
    ]


async def test_adding_licences_needs_a_count_a_good_model_id_and_an_app(
    licensing: Licensing, app: AppRecord
) -> None:
    with refused(INVALID_ARGUMENT):
        await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 0)
    with refused(errors.MODEL_ID_INVALID):
        await licensing.devices.add_licences(app.biz_name, "model/1", AUDIO, 1)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.add_licences("nobody", MODEL, AUDIO, 1)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.list_pools("nobody")
    assert await licensing.devices.list_pools(app.biz_name) == []


# Activation.


async def test_activating_again_the_same_way_consumes_nothing(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 2)
    first = await licensing.devices.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert first == ActivationRecord(
        app.biz_name, MODEL, "PROD1_dev01", VIDEO, clock.utc(), newly_activated=True
    )
    clock.advance(timedelta(minutes=1))
    again = await licensing.devices.activate(app.biz_name, MODEL, "PROD1_dev01", VIDEO)
    assert again == ActivationRecord(app.biz_name, MODEL, "PROD1_dev01", VIDEO, first.activated_at, False)
    assert await licensing.devices.get_activation("PROD1_dev01") == again
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert pool.used == 1
    assert store.facts_of(DeviceActivated) == [DeviceActivated(first)]


async def test_an_activated_device_keeps_its_licence_against_other_apps_and_types(
    licensing: Licensing, app: AppRecord
) -> None:
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.devices.add_licences(app.biz_name, MODEL, VIDEO, 1)
    await licensing.devices.add_licences(other.biz_name, MODEL, AUDIO, 1)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev01", VIDEO)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.devices.activate(app.biz_name, "model_2", "P_dev01", AUDIO)
    with refused(errors.ACTIVATION_CONFLICT):
        await licensing.devices.activate(other.biz_name, MODEL, "P_dev01", AUDIO)
    assert [pool.used for pool in await licensing.devices.list_pools(app.biz_name)] == [1, 0]
    assert [pool.used for pool in await licensing.devices.list_pools(other.biz_name)] == [0]


async def test_a_pool_exhausted_or_missing_refuses_activation(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    with refused(errors.LICENCE_POOL_EXHAUSTED):
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO)
    await activated(licensing, app, "P_dev01")
    with pytest.raises(ParleyError, match="all 1 AUDIO_CALL licences of model_id model_1 are used") as caught:
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    assert caught.value.kind is errors.LICENCE_POOL_EXHAUSTED
    with pytest.raises(ParleyError, match="has no VIDEO_CALL licences for model_id model_1") as caught:
        await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", VIDEO)
    assert caught.value.kind is errors.LICENCE_POOL_EXHAUSTED
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.get_activation("P_dev02")
    assert len(store.facts_of(DeviceActivated)) == 1


@pytest.mark.parametrize(
    ("model_id", "sn", "kind"),
    [
        (MODEL, "P_" + "d" * 127, errors.SN_TOO_LONG),
        (MODEL, "P_dev 01", errors.SN_ILLEGAL_CHARACTERS),
        (MODEL, "Pdev01", errors.SN_ILLEGAL_CHARACTERS),
        ("", "P_dev01", errors.MODEL_ID_INVALID),
    ],
)
async def test_activation_refuses_a_bad_sn_or_model_id(
    licensing: Licensing, app: AppRecord, model_id: str, sn: str, kind: ErrorKind
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 1)
    with refused(kind):
        await licensing.devices.activate(app.biz_name, model_id, sn, AUDIO)
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert pool.used == 0


async def test_an_unknown_app_activates_nothing(licensing: Licensing) -> None:
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.activate("nobody", MODEL, "P_dev01", AUDIO)


async def test_n_licences_activate_exactly_n_of_2n_racing_devices(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 5)
    outcomes = await asyncio.gather(
        *(
            licensing.devices.activate(app.biz_name, MODEL, f"RACE_dev{index:02d}", AUDIO)
            for index in range(10)
        ),
        return_exceptions=True,
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, ActivationRecord)]
    lost = [outcome for outcome in outcomes if not isinstance(outcome, ActivationRecord)]
    assert len(won) == 5 and all(activation.newly_activated for activation in won)
    assert all(
        isinstance(error, ParleyError) and error.kind is errors.LICENCE_POOL_EXHAUSTED for error in lost
    )
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert (pool.total, pool.used) == (5, 5)
    assert len(store.facts_of(DeviceActivated)) == 5


async def test_one_device_activated_by_racing_requests_consumes_one_licence(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 3)
    outcomes = await asyncio.gather(
        *(licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(6))
    )
    assert sum(activation.newly_activated for activation in outcomes) == 1
    assert len({activation.activated_at for activation in outcomes}) == 1
    [pool] = await licensing.devices.list_pools(app.biz_name)
    assert pool.used == 1
    assert len(store.facts_of(DeviceActivated)) == 1


async def test_the_last_licence_raced_for_by_one_device_twice_activates_it(
    licensing: Licensing, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 1)
    outcomes = await asyncio.gather(
        *(licensing.devices.activate(app.biz_name, MODEL, "P_dev01", AUDIO) for _ in range(2))
    )
    assert sorted(activation.newly_activated for activation in outcomes) == [False, True]


async def test_a_batch_answers_for_each_sn(licensing: Licensing, app: AppRecord) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 2)
    results = await licensing.devices.batch_activate(
        app.biz_name, MODEL, AUDIO, ["P_dev01", "bad sn", "P_dev01", "P_dev02", "P_dev03"]
    )
    assert [(result.sn, result.code, bool(result.msg)) for result in results] == [
        ("P_dev01", 0, False),
        ("bad sn", 9800002, True),
        ("P_dev01", 0, False),
        ("P_dev02", 0, False),
        ("P_dev03", 9800101, True),
    ]
    assert [result.activation.newly_activated if result.activation else None for result in results] == [
        True,
        None,
        False,
        True,
        None,
    ]


async def test_a_batch_for_an_unknown_app_or_a_bad_model_id_is_refused_whole(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, 1)
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.batch_activate("nobody", MODEL, AUDIO, ["P_dev01"])
    with refused(errors.MODEL_ID_INVALID):
        await licensing.devices.batch_activate(app.biz_name, "bad model", AUDIO, ["P_dev01"])
    assert store.facts_of(DeviceActivated) == []


# Registration.


async def test_a_ticket_registers_its_device_once_within_five_minutes(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    await activated(licensing, app, "P_dev01")
    assert not await licensing.devices.is_registered("P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    assert (ticket.sn, ticket.expires_at) == ("P_dev01", clock.utc() + timedelta(minutes=5))
    clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    registration = await licensing.devices.register_device("P_dev01", ticket.token)
    assert (registration.biz_name, registration.registered_at, registration.replaced) == (
        app.biz_name,
        clock.utc(),
        False,
    )
    assert await licensing.devices.is_registered("P_dev01")
    assert await licensing.devices.authenticate_device("P_dev01", registration.device_secret) == DeviceRecord(
        app.biz_name, MODEL, "P_dev01", AUDIO
    )
    with refused(errors.SN_TICKET_USED):
        await licensing.devices.register_device("P_dev01", ticket.token)
    assert store.facts_of(DeviceRegistered) == [DeviceRegistered(registration)]


async def test_an_expired_ticket_is_minus_10008(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord, clock: FakeClock
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    clock.advance(timedelta(minutes=5))
    with pytest.raises(ParleyError) as caught:
        await licensing.devices.register_device("P_dev01", ticket.token)
    assert (caught.value.kind, caught.value.code) == (errors.SN_TICKET_EXPIRED, -10008)
    assert not await licensing.devices.is_registered("P_dev01")
    assert store.facts_of(DeviceRegistered) == []


async def test_a_ticket_registers_only_its_own_device_and_refusals_do_not_spend_it(
    licensing: Licensing, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01", licences=2)
    await licensing.devices.activate(app.biz_name, MODEL, "P_dev02", AUDIO)
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.SN_TICKET_FOREIGN):
        await licensing.devices.register_device("P_dev02", ticket.token)
    with refused(errors.SN_TICKET_UNKNOWN):
        await licensing.devices.register_device("P_dev01", "not-a-ticket")
    await licensing.devices.register_device("P_dev01", ticket.token)


async def test_racing_registrations_with_one_ticket_succeed_once(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    await activated(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    outcomes = await asyncio.gather(
        *(licensing.devices.register_device("P_dev01", ticket.token) for _ in range(5)),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    [success] = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert all(isinstance(error, ParleyError) and error.kind is errors.SN_TICKET_USED for error in failures)
    assert len(failures) == 4
    assert (await licensing.devices.authenticate_device("P_dev01", success.device_secret)).sn == "P_dev01"
    assert len(store.facts_of(DeviceRegistered)) == 1


async def test_only_a_device_activated_in_the_app_gets_a_ticket_and_registers(
    licensing: Licensing, app: AppRecord
) -> None:
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.register_device("P_dev01", "any-ticket")
    other, _ = await licensing.apps.create_app("Other", AppSettings())
    await activated(licensing, other, "P_dev02")
    with refused(errors.DEVICE_NOT_ACTIVATED):
        await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev02")
    with refused(errors.APP_NOT_FOUND):
        await licensing.devices.issue_sn_ticket("nobody", "P_dev02")


async def test_registering_again_replaces_the_secret(
    licensing: Licensing, store: StoreWithFacts, app: AppRecord
) -> None:
    old_secret = await registered(licensing, app, "P_dev01")
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, "P_dev01")
    registration = await licensing.devices.register_device("P_dev01", ticket.token)
    assert registration.replaced and registration.device_secret != old_secret
    with refused(errors.DEVICE_UNAUTHENTICATED):
        await licensing.devices.authenticate_device("P_dev01", old_secret)
    await licensing.devices.authenticate_device("P_dev01", registration.device_secret)
    assert [fact.registration.replaced for fact in store.facts_of(DeviceRegistered)] == [False, True]


async def test_only_a_registered_device_with_its_own_secret_authenticates(
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
