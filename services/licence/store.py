"""What the licence rules need of storage: `LicenceStore`. `sql_store.SqlLicenceStore` keeps it in a
database (SQLite or PostgreSQL); the unit tests use an in-memory one (tests/unit/licence/fake_store.py), and
one contract suite (tests/integration/licence/test_store_contract.py) holds both to the promises below.

A unit of work (`writing()`) is one transaction: its writes and the facts it stages are kept together when
the block ends normally and are all discarded when it raises. Reads (`reading()`) only decide which answer
or error to give; what concurrent requests could break is decided inside a unit, by the conditional writes
that say whether they took effect (`consume_licence`, `spend_ticket`) and by `add_activation` refusing a
second activation of one sn. A unit that starts with such a write waits for concurrent writers instead of
failing (see sql_store.py for how each database does it).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.licence.records import (
    ActivationRecord,
    AppRecord,
    AppSettings,
    AuthorisationRecord,
    DeviceRecord,
    Fact,
    LicenceType,
    PoolRecord,
)
from services.licence.tickets import TicketRecord


class ActivationExists(Exception):
    """`add_activation` found the sn activated: a concurrent unit activated it first. Let it propagate out
    of the unit, which rolls back (the licence the unit took included)."""


@dataclass(frozen=True)
class SealedApp:
    app: AppRecord
    # keys.MasterKey envelope of the PKCS#8 DER private key, with the app_id as associated data.
    private_key_sealed: str


@dataclass(frozen=True)
class AppChanges:
    """The fields of an app to overwrite; None leaves a field as stored, so concurrent changes of different
    fields (a rename, new settings) both take effect."""

    updated_at: datetime
    name: str | None = None
    settings: AppSettings | None = None
    public_key: str | None = None
    private_key_sealed: str | None = None


@dataclass(frozen=True)
class RegisteredDevice:
    """An activated device that has registered, with the hash of its device secret."""

    device: DeviceRecord
    secret_hash: str


class LicenceReads(Protocol):
    async def find_app(self, biz_name: str) -> AppRecord | None: ...

    async def find_sealed_app(self, biz_name: str) -> SealedApp | None: ...

    async def list_apps(self) -> list[AppRecord]:
        """Oldest first; apps created at the same instant by bizName."""

    async def find_pool(
        self, biz_name: str, model_id: str, licence_type: LicenceType
    ) -> PoolRecord | None: ...

    async def list_pools(self, biz_name: str) -> list[PoolRecord]:
        """By model_id, then licence type."""

    async def find_activation(self, sn: str) -> ActivationRecord | None: ...

    async def find_ticket(self, token_hash: str) -> TicketRecord | None: ...

    async def is_registered(self, sn: str) -> bool: ...

    async def find_registered_device(self, sn: str) -> RegisteredDevice | None: ...

    async def user_known(self, open_id: str, biz_name: str | None = None) -> bool:
        """Whether the app (any app, when biz_name is None) has seen this open_id."""

    async def authorisation_status(self, sn: str, open_id: str) -> int | None:
        """The status of the user's authorisation of the device; None when there never was one."""

    async def authorised_users(
        self, sn: str, offset: int, limit: int
    ) -> tuple[list[AuthorisationRecord], int]:
        """A page of the device's authorisations with status AUTHORISED, and how many there are in all.

        Ordered by when each (sn, open_id) was first saved, which later saves do not change: a page read
        later never repeats one read earlier when users are added in between (new ones sort last).
        """

    async def authorised_devices(self, biz_name: str, open_id: str) -> list[AuthorisationRecord]:
        """The user's authorisations with status AUTHORISED within the app, ordered as in
        `authorised_users`."""

    async def in_arrears(self, biz_name: str) -> bool: ...


class LicenceWrites(LicenceReads, Protocol):
    async def add_app(self, app: SealedApp) -> None: ...

    async def update_app(self, biz_name: str, changes: AppChanges) -> bool:
        """False when no app has this bizName."""

    async def delete_app(self, biz_name: str) -> None:
        """Delete the app and everything under it: pools, activations, snTickets, registrations, users,
        authorisations and its account status. Other apps' rows stay."""

    async def add_licences(self, biz_name: str, model_id: str, licence_type: LicenceType, count: int) -> None:
        """Add `count` to the pool's total, creating the pool (with nothing used) if there is none."""

    async def consume_licence(self, biz_name: str, model_id: str, licence_type: LicenceType) -> bool:
        """Take one licence if one is left; False (taking nothing) if not or if there is no such pool.
        Check and take are one step: concurrent units never both get the last licence."""

    async def add_activation(self, activation: ActivationRecord) -> None:
        """Raises ActivationExists when the sn is already activated."""

    async def add_ticket(self, biz_name: str, ticket: TicketRecord) -> None: ...

    async def spend_ticket(self, token_hash: str, now: datetime) -> bool:
        """Mark the ticket used if it is unused and unexpired at `now`; False otherwise. One step: of
        concurrent units spending one ticket, one gets True."""

    async def save_registration(self, sn: str, secret_hash: str, registered_at: datetime) -> bool:
        """Register the device with this secret; True when it replaced an earlier registration."""

    async def add_user(self, biz_name: str, open_id: str, created_at: datetime) -> None:
        """Remember that the app has seen this open_id; nothing happens if it already has."""

    async def save_authorisation(self, authorisation: AuthorisationRecord) -> None:
        """Create the (sn, open_id) authorisation or overwrite its status and time, keeping its place."""

    async def apply_account_status(
        self, biz_name: str, in_arrears: bool, event_id: str, updated_at: datetime
    ) -> bool:
        """Record billing's word on the app's account unless `event_id` is the last one applied to it
        (then False). The app need not exist: billing may speak of an app deleted here."""

    async def stage(self, fact: Fact) -> None:
        """Keep the fact with this unit's changes: published once the unit is kept, never if it is not."""


class LicenceStore(Protocol):
    def reading(self) -> AbstractAsyncContextManager[LicenceReads]: ...

    def writing(self) -> AbstractAsyncContextManager[LicenceWrites]: ...
