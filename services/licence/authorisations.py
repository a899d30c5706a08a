"""Users' authorisations of devices (seed 000 onUpdateAuthorizeStatus / getVoipUserListV2, 003
getIotBindContactList), the check before a device calls a user (seed 000 doWxCloudVoipCallV2 return
values), and billing's word on whether an app's account is in arrears, which that check reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.core.errors import INVALID_ARGUMENT
from services.licence.apps import require_app
from services.licence.devices import require_activation_in
from services.licence.errors import (
    ACCOUNT_IN_ARREARS,
    DEVICE_ID_INVALID,
    DEVICE_NOT_ACTIVATED,
    MODEL_ID_MISMATCH,
    OPEN_ID_NOT_AUTHORISED,
    OPEN_ID_NOT_BOUND,
    OPEN_ID_UNKNOWN,
    OPEN_ID_WRONG_APP,
)
from services.licence.identifiers import parse_sn, validate_open_id
from services.licence.records import (
    AUTHORISED,
    NOT_AUTHORISED,
    AuthorisationChanged,
    AuthorisationRecord,
    DeviceRecord,
)
from services.licence.store import LicenceStore

# Seed 000 getVoipUserListV2: "单次最多获取10个用户" (at most 10 users a call).
MAX_USERS_PAGE = 10


class Authorisations:
    def __init__(self, store: LicenceStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def set_authorisation(
        self, biz_name: str, sn: str, open_id: str, authorised: bool
    ) -> AuthorisationRecord:
        """A user of the app authorises (or revokes) a device of the app; the user becomes known to it.
        The staged AuthorisationChanged is what the gateways push to the device."""
        parse_sn(sn)
        validate_open_id(open_id)
        authorisation = AuthorisationRecord(
            biz_name, sn, open_id, AUTHORISED if authorised else NOT_AUTHORISED, self._clock()
        )
        async with self._store.writing() as unit:
            await require_app(unit, biz_name)
            await require_activation_in(unit, biz_name, sn)
            await unit.add_user(biz_name, open_id, authorisation.updated_at)
            await unit.save_authorisation(authorisation)
            await unit.stage(AuthorisationChanged(authorisation))
        return authorisation

    async def list_authorised_users(
        self, sn: str, offset: int = 0, limit: int = MAX_USERS_PAGE
    ) -> tuple[list[AuthorisationRecord], int]:
        """A page of the users who authorise the device, oldest authorisation first, and their total.

        A limit above 10 is served as 10: the seed's device passes its buffer's size as the limit and pages
        on with the total. A limit below 1 or a negative offset is INVALID_ARGUMENT.
        """
        parse_sn(sn)
        if offset < 0 or limit < 1:
            raise INVALID_ARGUMENT(f"offset must be at least 0 and limit at least 1; got {offset}, {limit}")
        async with self._store.reading() as reads:
            if await reads.find_activation(sn) is None:
                raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated")
            return await reads.authorised_users(sn, offset, min(limit, MAX_USERS_PAGE))

    async def list_authorised_devices(self, biz_name: str, open_id: str) -> list[AuthorisationRecord]:
        """The devices of the app that the user authorises, oldest authorisation first."""
        validate_open_id(open_id)
        async with self._store.reading() as reads:
            await require_app(reads, biz_name)
            return await reads.authorised_devices(biz_name, open_id)

    async def check_device_call(self, sn: str, open_id: str, model_id: str | None = None) -> DeviceRecord:
        """The device, if it may call this user now; otherwise the seed's call code, checked in this order:
        -2 not activated or not registered, -17 another model_id, -7 malformed open_id, -20 open_id of
        no app, -19 open_id of another app, -9 never authorised, -8 revoked, -15 app in arrears.

        model_id None or empty is not checked: proto3 cannot tell an empty string from an absent one.
        """
        async with self._store.reading() as reads:
            registered = await reads.find_registered_device(sn)
            if registered is None:
                raise DEVICE_ID_INVALID(f"device {sn} is not activated and registered")
            device = registered.device
            if model_id and model_id != device.model_id:
                raise MODEL_ID_MISMATCH(f"device {sn} is licensed for model_id {device.model_id}")
            validate_open_id(open_id)
            if not await reads.user_known(open_id, device.biz_name):
                if await reads.user_known(open_id):
                    raise OPEN_ID_WRONG_APP(f"open_id {open_id} is not a user of app {device.biz_name}")
                raise OPEN_ID_UNKNOWN(f"no app knows open_id {open_id}")
            status = await reads.authorisation_status(sn, open_id)
            if status is None:
                raise OPEN_ID_NOT_BOUND(f"open_id {open_id} never authorised device {sn}")
            if status != AUTHORISED:
                raise OPEN_ID_NOT_AUTHORISED(f"open_id {open_id} revoked device {sn}")
            if await reads.in_arrears(device.biz_name):
                raise ACCOUNT_IN_ARREARS(f"app {device.biz_name} is in arrears")
        return device

    async def set_account_status(self, biz_name: str, in_arrears: bool, *, event_id: str) -> bool:
        """Record billing's word on the app's account; False when this event was the last one applied.

        Billing's events are keyed by bizName, so one app's arrive in order, and a redelivery after a
        crash repeats them in that order: applying them again ends in the same state. The event need not
        name an existing app (see `tables.account_status`).
        """
        if not event_id:
            raise INVALID_ARGUMENT("an account status change needs its event id")
        async with self._store.writing() as unit:
            return await unit.apply_account_status(biz_name, in_arrears, event_id, self._clock())
