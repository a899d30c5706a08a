"""`LicenceStore` in a database through SQLAlchemy 2 (async): SQLite by default, PostgreSQL at scale, the
tables of tables.py. A unit of work is one transaction; the facts it stages go to the licence outbox in
that transaction (services/core/outbox.py), and the outbox is woken once it commits.

Concurrency. Every invariant that concurrent requests could break is kept by one conditional write,
checked by its row count, that opens its unit's transaction: `used = used + 1 WHERE used < total` for a
licence (`consume_licence`), `used_at = now WHERE used_at IS NULL` for an snTicket (`spend_ticket`).
Unique keys settle the rest (one activation per sn, one authorisation per user and device). On
PostgreSQL the conditional write locks the row and re-reads it after a concurrent writer commits; on
SQLite a write that opens a transaction waits for the database's one writer (the 30 s busy timeout of
services/core/db.py) instead of failing. So a pool of 5 activates exactly 5 of 10 racing devices on both,
and one ticket registers once however many race (tests/unit/licence/test_devices.py, which
tests/integration/licence/test_rules_on_databases.py runs on both databases).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.outbox import Outbox
from services.core.topics import Topic
from services.licence.facts import licence_event
from services.licence.records import (
    AUTHORISED,
    ActivationRecord,
    AppRecord,
    AppSettings,
    AuthorisationRecord,
    DeviceRecord,
    Fact,
    LicenceType,
    PoolRecord,
)
from services.licence.store import ActivationExists, AppChanges, RegisteredDevice, SealedApp
from services.licence.tables import (
    account_status,
    activations,
    apps,
    authorisations,
    pools,
    registrations,
    sn_tickets,
    users,
)
from services.licence.tickets import TicketRecord

# A row as the database returns it.
_Row = Mapping[Any, Any]


class SqlLicenceStore:
    def __init__(self, engine: AsyncEngine, outbox: Outbox) -> None:
        self._engine = engine
        self._outbox = outbox

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_SqlReads]:
        async with self._engine.connect() as connection:
            yield _SqlReads(connection)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[_SqlWrites]:
        async with self._engine.begin() as connection:
            unit = _SqlWrites(connection, self._outbox)
            yield unit
        if unit.staged:
            self._outbox.notify()


class _SqlReads:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def find_app(self, biz_name: str) -> AppRecord | None:
        row = await self._app_row(biz_name)
        return None if row is None else _app_record(row)

    async def find_sealed_app(self, biz_name: str) -> SealedApp | None:
        row = await self._app_row(biz_name)
        return None if row is None else SealedApp(_app_record(row), row["private_key_sealed"])

    async def list_apps(self) -> list[AppRecord]:
        rows = await self._connection.execute(select(apps).order_by(apps.c.created_at, apps.c.biz_name))
        return [_app_record(row) for row in rows.mappings()]

    async def find_pool(self, biz_name: str, model_id: str, licence_type: LicenceType) -> PoolRecord | None:
        result = await self._connection.execute(
            select(pools).where(
                pools.c.biz_name == biz_name, pools.c.model_id == model_id, pools.c.type == licence_type.value
            )
        )
        row = result.mappings().first()
        return None if row is None else _pool_record(row)

    async def list_pools(self, biz_name: str) -> list[PoolRecord]:
        rows = await self._connection.execute(
            select(pools).where(pools.c.biz_name == biz_name).order_by(pools.c.model_id, pools.c.type)
        )
        return [_pool_record(row) for row in rows.mappings()]

    async def find_activation(self, sn: str) -> ActivationRecord | None:
        result = await self._connection.execute(select(activations).where(activations.c.sn == sn))
        row = result.mappings().first()
        return None if row is None else _activation_record(row)

    async def find_ticket(self, token_hash: str) -> TicketRecord | None:
        result = await self._connection.execute(
            select(sn_tickets, apps.c.app_id)
            .join(apps, apps.c.biz_name == sn_tickets.c.biz_name)
            .where(sn_tickets.c.token_hash == token_hash)
        )
        row = result.mappings().first()
        if row is None:
            return None
        return TicketRecord(row["token_hash"], row["sn"], row["app_id"], row["expires_at"], row["used_at"])

    async def is_registered(self, sn: str) -> bool:
        return bool(await self._connection.scalar(select(exists().where(registrations.c.sn == sn))))

    async def find_registered_device(self, sn: str) -> RegisteredDevice | None:
        result = await self._connection.execute(
            select(activations, registrations.c.secret_hash)
            .join(registrations, registrations.c.sn == activations.c.sn)
            .where(activations.c.sn == sn)
        )
        row = result.mappings().first()
        if row is None:
            return None
        device = DeviceRecord(row["biz_name"], row["model_id"], row["sn"], LicenceType(row["type"]))
        return RegisteredDevice(device, row["secret_hash"])

    async def user_known(self, open_id: str, biz_name: str | None = None) -> bool:
        condition = users.c.open_id == open_id
        if biz_name is not None:
            condition = and_(condition, users.c.biz_name == biz_name)
        return bool(await self._connection.scalar(select(exists().where(condition))))

    async def authorisation_status(self, sn: str, open_id: str) -> int | None:
        status: int | None = await self._connection.scalar(
            select(authorisations.c.status).where(
                authorisations.c.sn == sn, authorisations.c.open_id == open_id
            )
        )
        return status

    async def authorised_users(
        self, sn: str, offset: int, limit: int
    ) -> tuple[list[AuthorisationRecord], int]:
        authorised = and_(authorisations.c.sn == sn, authorisations.c.status == AUTHORISED)
        total = await self._connection.scalar(
            select(func.count()).select_from(authorisations).where(authorised)
        )
        rows = await self._connection.execute(
            # The row id never changes and grows with each new row: see tables.authorisations.
            select(authorisations).where(authorised).order_by(authorisations.c.id).offset(offset).limit(limit)
        )
        return [_authorisation_record(row) for row in rows.mappings()], int(total or 0)

    async def authorised_devices(self, biz_name: str, open_id: str) -> list[AuthorisationRecord]:
        rows = await self._connection.execute(
            select(authorisations)
            .where(
                authorisations.c.biz_name == biz_name,
                authorisations.c.open_id == open_id,
                authorisations.c.status == AUTHORISED,
            )
            .order_by(authorisations.c.id)
        )
        return [_authorisation_record(row) for row in rows.mappings()]

    async def in_arrears(self, biz_name: str) -> bool:
        return bool(
            await self._connection.scalar(
                select(account_status.c.in_arrears).where(account_status.c.biz_name == biz_name)
            )
        )

    async def _app_row(self, biz_name: str) -> _Row | None:
        result = await self._connection.execute(select(apps).where(apps.c.biz_name == biz_name))
        return result.mappings().first()


class _SqlWrites(_SqlReads):
    def __init__(self, connection: AsyncConnection, outbox: Outbox) -> None:
        super().__init__(connection)
        self._outbox = outbox
        self.staged = False

    async def add_app(self, app: SealedApp) -> None:
        record = app.app
        await self._connection.execute(
            apps.insert().values(
                biz_name=record.biz_name,
                app_id=record.app_id,
                workspace_id=record.workspace_id,
                name=record.name,
                public_key=record.public_key,
                private_key_sealed=app.private_key_sealed,
                created_at=record.created_at,
                updated_at=record.updated_at,
                **_settings_values(record.settings),
            )
        )

    async def update_app(self, biz_name: str, changes: AppChanges) -> bool:
        values: dict[str, Any] = {"updated_at": changes.updated_at}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.settings is not None:
            values.update(_settings_values(changes.settings))
        if changes.public_key is not None:
            values["public_key"] = changes.public_key
        if changes.private_key_sealed is not None:
            values["private_key_sealed"] = changes.private_key_sealed
        updated = await self._connection.execute(
            update(apps).where(apps.c.biz_name == biz_name).values(values)
        )
        return bool(updated.rowcount == 1)

    async def delete_app(self, biz_name: str) -> None:
        app_sns = select(activations.c.sn).where(activations.c.biz_name == biz_name)
        await self._connection.execute(delete(registrations).where(registrations.c.sn.in_(app_sns)))
        # Children before parents: the foreign keys hold even while this runs.
        for table in (authorisations, sn_tickets, activations, pools, users, account_status, apps):
            await self._connection.execute(delete(table).where(table.c.biz_name == biz_name))

    async def add_licences(self, biz_name: str, model_id: str, licence_type: LicenceType, count: int) -> None:
        insert = self._insert(pools).values(
            biz_name=biz_name, model_id=model_id, type=licence_type.value, total=count, used=0
        )
        await self._connection.execute(
            insert.on_conflict_do_update(
                index_elements=[pools.c.biz_name, pools.c.model_id, pools.c.type],
                set_={"total": pools.c.total + insert.excluded.total},
            )
        )

    async def consume_licence(self, biz_name: str, model_id: str, licence_type: LicenceType) -> bool:
        # One statement both checks and takes: two activations can never both see the last licence free.
        consumed = await self._connection.execute(
            update(pools)
            .where(
                pools.c.biz_name == biz_name,
                pools.c.model_id == model_id,
                pools.c.type == licence_type.value,
                pools.c.used < pools.c.total,
            )
            .values(used=pools.c.used + 1)
        )
        return bool(consumed.rowcount == 1)

    async def add_activation(self, activation: ActivationRecord) -> None:
        try:
            await self._connection.execute(
                activations.insert().values(
                    sn=activation.sn,
                    biz_name=activation.biz_name,
                    model_id=activation.model_id,
                    type=activation.licence_type.value,
                    activated_at=activation.activated_at,
                )
            )
        except IntegrityError as error:
            # The primary key on sn: a concurrent activation of this sn committed first (on PostgreSQL
            # this insert waited for it). The transaction is spoilt; the unit must roll back.
            raise ActivationExists(activation.sn) from error

    async def add_ticket(self, biz_name: str, ticket: TicketRecord) -> None:
        await self._connection.execute(
            sn_tickets.insert().values(
                token_hash=ticket.token_hash,
                sn=ticket.sn,
                biz_name=biz_name,
                expires_at=ticket.expires_at,
                used_at=ticket.used_at,
            )
        )

    async def spend_ticket(self, token_hash: str, now: datetime) -> bool:
        spent = await self._connection.execute(
            update(sn_tickets)
            .where(
                sn_tickets.c.token_hash == token_hash,
                sn_tickets.c.used_at.is_(None),
                sn_tickets.c.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(spent.rowcount == 1)

    async def save_registration(self, sn: str, secret_hash: str, registered_at: datetime) -> bool:
        replaced = await self.is_registered(sn)
        insert = self._insert(registrations).values(
            sn=sn, secret_hash=secret_hash, registered_at=registered_at
        )
        await self._connection.execute(
            insert.on_conflict_do_update(
                index_elements=[registrations.c.sn],
                set_={
                    "secret_hash": insert.excluded.secret_hash,
                    "registered_at": insert.excluded.registered_at,
                },
            )
        )
        return replaced

    async def add_user(self, biz_name: str, open_id: str, created_at: datetime) -> None:
        user = self._insert(users).values(biz_name=biz_name, open_id=open_id, created_at=created_at)
        await self._connection.execute(
            user.on_conflict_do_nothing(index_elements=[users.c.biz_name, users.c.open_id])
        )

    async def save_authorisation(self, authorisation: AuthorisationRecord) -> None:
        insert = self._insert(authorisations).values(
            biz_name=authorisation.biz_name,
            sn=authorisation.sn,
            open_id=authorisation.open_id,
            status=authorisation.status,
            updated_at=authorisation.updated_at,
        )
        await self._connection.execute(
            insert.on_conflict_do_update(
                index_elements=[authorisations.c.sn, authorisations.c.open_id],
                set_={"status": authorisation.status, "updated_at": authorisation.updated_at},
            )
        )

    async def apply_account_status(
        self, biz_name: str, in_arrears: bool, event_id: str, updated_at: datetime
    ) -> bool:
        values = {"in_arrears": in_arrears, "last_event_id": event_id, "updated_at": updated_at}
        changed = await self._connection.execute(
            update(account_status)
            .where(account_status.c.biz_name == biz_name, account_status.c.last_event_id != event_id)
            .values(values)
        )
        if changed.rowcount == 1:
            return True
        inserted = await self._connection.execute(
            self._insert(account_status)
            .values(biz_name=biz_name, **values)
            .on_conflict_do_nothing(index_elements=[account_status.c.biz_name])
        )
        return bool(inserted.rowcount == 1)

    async def stage(self, fact: Fact) -> None:
        key, event = licence_event(fact)
        await self._outbox.stage(self._connection, Topic.LICENCE, event, key=key)
        self.staged = True

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        # INSERT ... ON CONFLICT reads the same in both databases, but SQLAlchemy builds it per dialect.
        dialect = self._connection.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise RuntimeError(f"the licence store runs on SQLite or PostgreSQL, not {dialect}")


def _settings_values(settings: AppSettings) -> dict[str, Any]:
    return {
        "auto_record": settings.auto_record,
        "record_callback_url": settings.record_callback_url,
        "room_status_callback_url": settings.room_status_callback_url,
        "media_proxy": settings.media_proxy,
    }


def _app_record(row: _Row) -> AppRecord:
    return AppRecord(
        biz_name=row["biz_name"],
        app_id=row["app_id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        public_key=row["public_key"],
        settings=AppSettings(
            auto_record=row["auto_record"],
            record_callback_url=row["record_callback_url"],
            room_status_callback_url=row["room_status_callback_url"],
            media_proxy=row["media_proxy"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _pool_record(row: _Row) -> PoolRecord:
    return PoolRecord(row["biz_name"], row["model_id"], LicenceType(row["type"]), row["total"], row["used"])


def _activation_record(row: _Row) -> ActivationRecord:
    return ActivationRecord(
        row["biz_name"],
        row["model_id"],
        row["sn"],
        LicenceType(row["type"]),
        row["activated_at"],
        newly_activated=False,
    )


def _authorisation_record(row: _Row) -> AuthorisationRecord:
    return AuthorisationRecord(row["biz_name"], row["sn"], row["open_id"], row["status"], row["updated_at"])
