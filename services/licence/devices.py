"""Devices: licence pools and activation (seed 000 activateVoipLicenseV2 and the cloud batch activation
API), registration with one-time snTickets (seed 001 registerAvtVoip / isAvtVoipRegistered), and devices
proving who they are with the secret registration gave them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from services.core.errors import INVALID_ARGUMENT, ParleyError
from services.licence import tickets
from services.licence.apps import require_app
from services.licence.errors import (
    ACTIVATION_CONFLICT,
    DEVICE_NOT_ACTIVATED,
    DEVICE_UNAUTHENTICATED,
    LICENCE_POOL_EXHAUSTED,
    SN_TICKET_USED,
)
from services.licence.identifiers import parse_sn, validate_model_id
from services.licence.records import (
    ActivationRecord,
    BatchActivationResult,
    DeviceActivated,
    DeviceRecord,
    DeviceRegistered,
    LicenceType,
    PoolRecord,
    RegistrationRecord,
    SnTicketRecord,
)
from services.licence.store import ActivationExists, LicenceReads, LicenceStore


class Devices:
    def __init__(self, store: LicenceStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    # Licences and activation.

    async def add_licences(
        self, biz_name: str, model_id: str, licence_type: LicenceType, count: int
    ) -> PoolRecord:
        """Add `count` licences to the app's pool for this product and type, creating the pool."""
        validate_model_id(model_id)
        if count < 1:
            raise INVALID_ARGUMENT(f"count must be at least 1, got {count}")
        async with self._store.writing() as unit:
            await require_app(unit, biz_name)
            await unit.add_licences(biz_name, model_id, licence_type, count)
            pool = await unit.find_pool(biz_name, model_id, licence_type)
        assert pool is not None, "add_licences wrote this pool"
        return pool

    async def list_pools(self, biz_name: str) -> list[PoolRecord]:
        async with self._store.reading() as reads:
            await require_app(reads, biz_name)
            return await reads.list_pools(biz_name)

    async def activate(
        self, biz_name: str, model_id: str, sn: str, licence_type: LicenceType
    ) -> ActivationRecord:
        """Activate a device, consuming one licence; activating it again the same way consumes nothing."""
        parse_sn(sn)
        validate_model_id(model_id)
        async with self._store.reading() as reads:
            await require_app(reads, biz_name)
            existing = await reads.find_activation(sn)
        if existing is not None:
            return _same_activation(existing, biz_name, model_id, licence_type)
        activation = ActivationRecord(
            biz_name, model_id, sn, licence_type, self._clock(), newly_activated=True
        )
        try:
            async with self._store.writing() as unit:
                # The licence is taken first: that conditional write opens the unit (store.py).
                if await unit.consume_licence(biz_name, model_id, licence_type):
                    await unit.add_activation(activation)
                    await unit.stage(DeviceActivated(activation))
                    return activation
        except ActivationExists:
            # A concurrent activation of this sn committed first. Leaving the unit rolled it back, the
            # licence taken above included; the winner's activation is the answer.
            pass
        # No licence was left, or a concurrent activation of this sn won (possibly the last licence).
        async with self._store.reading() as reads:
            existing = await reads.find_activation(sn)
            if existing is not None:
                return _same_activation(existing, biz_name, model_id, licence_type)
            pool = await reads.find_pool(biz_name, model_id, licence_type)
        if pool is None:
            raise LICENCE_POOL_EXHAUSTED(
                f"app {biz_name} has no {licence_type.name} licences for model_id {model_id}"
            )
        raise LICENCE_POOL_EXHAUSTED(
            f"all {pool.total} {licence_type.name} licences of model_id {model_id} are used"
        )

    async def batch_activate(
        self, biz_name: str, model_id: str, licence_type: LicenceType, sns: Iterable[str]
    ) -> list[BatchActivationResult]:
        """Activate each sn on its own: one refused sn (bad, exhausted) does not stop the others.
        An unknown app or a bad model_id refuses the whole batch."""
        validate_model_id(model_id)
        async with self._store.reading() as reads:
            await require_app(reads, biz_name)
        results = []
        for sn in sns:
            try:
                activation = await self.activate(biz_name, model_id, sn, licence_type)
            except ParleyError as error:
                results.append(BatchActivationResult(sn, None, error.code, error.message))
            else:
                results.append(BatchActivationResult(sn, activation, 0, ""))
        return results

    async def get_activation(self, sn: str) -> ActivationRecord:
        parse_sn(sn)
        async with self._store.reading() as reads:
            activation = await reads.find_activation(sn)
        if activation is None:
            raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated")
        return activation

    # Registration.

    async def issue_sn_ticket(self, biz_name: str, sn: str) -> SnTicketRecord:
        """A ticket with which the device registers once, within 5 minutes."""
        parse_sn(sn)
        async with self._store.writing() as unit:
            app = await require_app(unit, biz_name)
            await require_activation_in(unit, biz_name, sn)
            issued = tickets.issue_ticket(sn=sn, app_id=app.app_id, now=self._clock())
            await unit.add_ticket(biz_name, issued.record)
        return SnTicketRecord(issued.token, sn, issued.record.expires_at)

    async def register_device(self, sn: str, ticket: str) -> RegistrationRecord:
        """Spend the ticket and give the device a new secret, replacing any earlier one."""
        parse_sn(sn)
        now = self._clock()
        token_hash = tickets.hash_credential(ticket)
        async with self._store.reading() as reads:
            activation = await reads.find_activation(sn)
            if activation is None:
                raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated and cannot register")
            tickets.check_ticket(await reads.find_ticket(token_hash), sn=sn, now=now)
        secret = tickets.new_device_secret()
        async with self._store.writing() as unit:
            # Spending the ticket opens the unit (store.py).
            if not await unit.spend_ticket(token_hash, now):
                # The ticket passed check_ticket at this same `now`; only a registration racing with the
                # same ticket can have spent it since.
                raise SN_TICKET_USED()
            replaced = await unit.save_registration(sn, secret.secret_hash, now)
            registration = RegistrationRecord(activation.biz_name, sn, secret.secret, now, replaced)
            await unit.stage(DeviceRegistered(registration))
        return registration

    async def is_registered(self, sn: str) -> bool:
        parse_sn(sn)
        async with self._store.reading() as reads:
            return await reads.is_registered(sn)

    async def authenticate_device(self, sn: str, secret: str) -> DeviceRecord:
        async with self._store.reading() as reads:
            registered = await reads.find_registered_device(sn)
        if registered is None or not tickets.device_secret_matches(secret, registered.secret_hash):
            raise DEVICE_UNAUTHENTICATED()
        return registered.device


async def require_activation_in(reads: LicenceReads, biz_name: str, sn: str) -> None:
    activation = await reads.find_activation(sn)
    # A device of another app is "not activated" here: the answer does not reveal other apps' devices.
    if activation is None or activation.biz_name != biz_name:
        raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated in app {biz_name}")


def _same_activation(
    activation: ActivationRecord, biz_name: str, model_id: str, licence_type: LicenceType
) -> ActivationRecord:
    if activation.biz_name != biz_name:
        raise ACTIVATION_CONFLICT(f"device {activation.sn} is activated in another app")
    if activation.model_id != model_id or activation.licence_type != licence_type:
        raise ACTIVATION_CONFLICT(
            f"device {activation.sn} is activated for model_id {activation.model_id} "
            f"as {activation.licence_type.name}"
        )
    return replace(activation, newly_activated=False)
