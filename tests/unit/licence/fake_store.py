"""`LicenceStore` in memory, for unit tests of the licence rules (services/licence/store.py says what it
must do; tests/integration/licence/test_store_contract.py holds it and the database-backed store to the
same promises).

A unit of work holds the one writer's lock, as SQLite does, and works on a copy of the state that replaces
the state only when the unit ends normally: a unit that raises leaves nothing behind, its staged facts
included. Every operation yields to the event loop once, as a database round trip would, so that requests
run concurrently by a test interleave and the rules' handling of races is exercised.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from services.licence.records import (
    AUTHORISED,
    ActivationRecord,
    AppRecord,
    AuthorisationRecord,
    DeviceRecord,
    Fact,
    LicenceType,
    PoolRecord,
)
from services.licence.store import ActivationExists, AppChanges, RegisteredDevice, SealedApp
from services.licence.tickets import TicketRecord

_PoolKey = tuple[str, str, LicenceType]
FactT = TypeVar("FactT")


@dataclass
class _AccountStatus:
    in_arrears: bool
    last_event_id: str


@dataclass
class _State:
    apps: dict[str, SealedApp] = field(default_factory=dict)
    pools: dict[_PoolKey, PoolRecord] = field(default_factory=dict)
    activations: dict[str, ActivationRecord] = field(default_factory=dict)
    # token hash -> (bizName, ticket)
    tickets: dict[str, tuple[str, TicketRecord]] = field(default_factory=dict)
    # sn -> secret hash
    registrations: dict[str, str] = field(default_factory=dict)
    users: set[tuple[str, str]] = field(default_factory=set)
    # Insertion order is the order of first saving, which overwriting keeps (as the tables' row id does).
    authorisations: dict[tuple[str, str], AuthorisationRecord] = field(default_factory=dict)
    account_status: dict[str, _AccountStatus] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)


class InMemoryLicenceStore:
    def __init__(self) -> None:
        self._state = _State()
        self._writer = asyncio.Lock()

    @property
    def facts(self) -> list[Fact]:
        """The facts of the units kept so far, in order."""
        return list(self._state.facts)

    def facts_of(self, kind: type[FactT]) -> list[FactT]:
        return [fact for fact in self._state.facts if isinstance(fact, kind)]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_Reads]:
        yield _Reads(self._state)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[_Writes]:
        async with self._writer:
            draft = copy.deepcopy(self._state)
            yield _Writes(draft)
            self._state = draft


class _Reads:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def find_app(self, biz_name: str) -> AppRecord | None:
        sealed = await self.find_sealed_app(biz_name)
        return None if sealed is None else sealed.app

    async def find_sealed_app(self, biz_name: str) -> SealedApp | None:
        await asyncio.sleep(0)
        return self._state.apps.get(biz_name)

    async def list_apps(self) -> list[AppRecord]:
        await asyncio.sleep(0)
        apps = [sealed.app for sealed in self._state.apps.values()]
        return sorted(apps, key=lambda app: (app.created_at, app.biz_name))

    async def find_pool(self, biz_name: str, model_id: str, licence_type: LicenceType) -> PoolRecord | None:
        await asyncio.sleep(0)
        return self._state.pools.get((biz_name, model_id, licence_type))

    async def list_pools(self, biz_name: str) -> list[PoolRecord]:
        await asyncio.sleep(0)
        pools = [pool for pool in self._state.pools.values() if pool.biz_name == biz_name]
        return sorted(pools, key=lambda pool: (pool.model_id, pool.licence_type))

    async def find_activation(self, sn: str) -> ActivationRecord | None:
        await asyncio.sleep(0)
        return self._state.activations.get(sn)

    async def find_ticket(self, token_hash: str) -> TicketRecord | None:
        await asyncio.sleep(0)
        stored = self._state.tickets.get(token_hash)
        return None if stored is None else stored[1]

    async def is_registered(self, sn: str) -> bool:
        await asyncio.sleep(0)
        return sn in self._state.registrations

    async def find_registered_device(self, sn: str) -> RegisteredDevice | None:
        await asyncio.sleep(0)
        activation = self._state.activations.get(sn)
        secret_hash = self._state.registrations.get(sn)
        if activation is None or secret_hash is None:
            return None
        device = DeviceRecord(activation.biz_name, activation.model_id, sn, activation.licence_type)
        return RegisteredDevice(device, secret_hash)

    async def user_known(self, open_id: str, biz_name: str | None = None) -> bool:
        await asyncio.sleep(0)
        return any(
            known_open_id == open_id and biz_name in (None, known_biz_name)
            for known_biz_name, known_open_id in self._state.users
        )

    async def authorisation_status(self, sn: str, open_id: str) -> int | None:
        await asyncio.sleep(0)
        authorisation = self._state.authorisations.get((sn, open_id))
        return None if authorisation is None else authorisation.status

    async def authorised_users(
        self, sn: str, offset: int, limit: int
    ) -> tuple[list[AuthorisationRecord], int]:
        await asyncio.sleep(0)
        authorised = [
            authorisation
            for authorisation in self._state.authorisations.values()
            if authorisation.sn == sn and authorisation.status == AUTHORISED
        ]
        return authorised[offset : offset + limit], len(authorised)

    async def authorised_devices(self, biz_name: str, open_id: str) -> list[AuthorisationRecord]:
        await asyncio.sleep(0)
        return [
            authorisation
            for authorisation in self._state.authorisations.values()
            if (authorisation.biz_name, authorisation.open_id, authorisation.status)
            == (biz_name, open_id, AUTHORISED)
        ]

    async def in_arrears(self, biz_name: str) -> bool:
        await asyncio.sleep(0)
        status = self._state.account_status.get(biz_name)
        return status is not None and status.in_arrears


class _Writes(_Reads):
    async def add_app(self, app: SealedApp) -> None:
        await asyncio.sleep(0)
        assert app.app.biz_name not in self._state.apps, "bizNames are unique"
        self._state.apps[app.app.biz_name] = app

    async def update_app(self, biz_name: str, changes: AppChanges) -> bool:
        await asyncio.sleep(0)
        stored = self._state.apps.get(biz_name)
        if stored is None:
            return False
        app = replace(
            stored.app,
            updated_at=changes.updated_at,
            name=stored.app.name if changes.name is None else changes.name,
            settings=stored.app.settings if changes.settings is None else changes.settings,
            public_key=stored.app.public_key if changes.public_key is None else changes.public_key,
        )
        sealed = (
            stored.private_key_sealed if changes.private_key_sealed is None else changes.private_key_sealed
        )
        self._state.apps[biz_name] = SealedApp(app, sealed)
        return True

    async def delete_app(self, biz_name: str) -> None:
        await asyncio.sleep(0)
        state = self._state
        sns = {sn for sn, activation in state.activations.items() if activation.biz_name == biz_name}
        state.apps.pop(biz_name, None)
        state.account_status.pop(biz_name, None)
        state.pools = {key: pool for key, pool in state.pools.items() if pool.biz_name != biz_name}
        state.activations = {sn: a for sn, a in state.activations.items() if sn not in sns}
        state.tickets = {key: ticket for key, ticket in state.tickets.items() if ticket[0] != biz_name}
        state.registrations = {sn: h for sn, h in state.registrations.items() if sn not in sns}
        state.users = {user for user in state.users if user[0] != biz_name}
        state.authorisations = {
            key: authorisation
            for key, authorisation in state.authorisations.items()
            if authorisation.biz_name != biz_name
        }

    async def add_licences(self, biz_name: str, model_id: str, licence_type: LicenceType, count: int) -> None:
        await asyncio.sleep(0)
        key = (biz_name, model_id, licence_type)
        pool = self._state.pools.get(key, PoolRecord(biz_name, model_id, licence_type, 0, 0))
        self._state.pools[key] = replace(pool, total=pool.total + count)

    async def consume_licence(self, biz_name: str, model_id: str, licence_type: LicenceType) -> bool:
        await asyncio.sleep(0)
        key = (biz_name, model_id, licence_type)
        pool = self._state.pools.get(key)
        if pool is None or pool.used >= pool.total:
            return False
        self._state.pools[key] = replace(pool, used=pool.used + 1)
        return True

    async def add_activation(self, activation: ActivationRecord) -> None:
        await asyncio.sleep(0)
        if activation.sn in self._state.activations:
            raise ActivationExists(activation.sn)
        self._state.activations[activation.sn] = replace(activation, newly_activated=False)

    async def add_ticket(self, biz_name: str, ticket: TicketRecord) -> None:
        await asyncio.sleep(0)
        self._state.tickets[ticket.token_hash] = (biz_name, ticket)

    async def spend_ticket(self, token_hash: str, now: datetime) -> bool:
        await asyncio.sleep(0)
        stored = self._state.tickets.get(token_hash)
        if stored is None or stored[1].used_at is not None or now >= stored[1].expires_at:
            return False
        self._state.tickets[token_hash] = (stored[0], replace(stored[1], used_at=now))
        return True

    async def save_registration(self, sn: str, secret_hash: str, registered_at: datetime) -> bool:
        await asyncio.sleep(0)
        replaced = sn in self._state.registrations
        self._state.registrations[sn] = secret_hash
        return replaced

    async def add_user(self, biz_name: str, open_id: str, created_at: datetime) -> None:
        await asyncio.sleep(0)
        self._state.users.add((biz_name, open_id))

    async def save_authorisation(self, authorisation: AuthorisationRecord) -> None:
        await asyncio.sleep(0)
        self._state.authorisations[(authorisation.sn, authorisation.open_id)] = authorisation

    async def apply_account_status(
        self, biz_name: str, in_arrears: bool, event_id: str, updated_at: datetime
    ) -> bool:
        await asyncio.sleep(0)
        status = self._state.account_status.get(biz_name)
        if status is not None and status.last_event_id == event_id:
            return False
        self._state.account_status[biz_name] = _AccountStatus(in_arrears, event_id)
        return True

    async def stage(self, fact: Fact) -> None:
        await asyncio.sleep(0)
        self._state.facts.append(fact)
