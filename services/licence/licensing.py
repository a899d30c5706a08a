"""The licence service's domain, over its database: call apps and their keys, signatures, device licences,
registration, users' authorisations, and the checks before a device call. No transport here: the gRPC
servicer and the event handlers translate to and from these records.

Identifiers Parley generates for an app (002 section 4 names them; its examples are placeholders):

- bizName: "biz" and 12 lowercase hex digits, e.g. `biz5f3a9c0e21d4`. 002 calls it the scene code the
  console generates ("应用创建后自动生成"); lowercase ASCII, like the seed's `demo`, survives URLs, topic
  keys and log lines unchanged.
- appId: "PARLEY" and 13 uppercase hex digits, e.g. `PARLEY059F038311550`: the shape of an mPaaS appId
  (`ALIPUB059F038311550`), which customers' signing code and configuration files already hold.
- workspaceId: `default`, the seed's value throughout (002 sections 3 and 4). Parley has no workspaces.

Concurrency. Every invariant that concurrent requests could break is kept by one conditional write,
checked by its row count, that opens its transaction: `used = used + 1 WHERE used < total` for a
licence, `used_at = now WHERE used_at IS NULL` for an snTicket. Unique keys settle the rest (one
activation per sn, one authorisation per user and device). On PostgreSQL the conditional write locks
the row and re-reads it after a concurrent writer commits; on SQLite a write that opens a transaction
waits for the database's one writer instead of failing. Reads that only decide which error to raise
may run before, outside the transaction.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Table, and_, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.errors import INVALID_ARGUMENT, ParleyError
from services.licence import keys, signatures, tickets
from services.licence.errors import (
    ACCOUNT_IN_ARREARS,
    ACTIVATION_CONFLICT,
    APP_NOT_FOUND,
    DEVICE_ID_INVALID,
    DEVICE_NOT_ACTIVATED,
    DEVICE_UNAUTHENTICATED,
    LICENCE_POOL_EXHAUSTED,
    MODEL_ID_MISMATCH,
    OPEN_ID_NOT_AUTHORISED,
    OPEN_ID_NOT_BOUND,
    OPEN_ID_UNKNOWN,
    OPEN_ID_WRONG_APP,
    SIGNATURE_UNKNOWN_APP,
    SN_TICKET_USED,
)
from services.licence.identifiers import parse_sn, validate_model_id, validate_open_id
from services.licence.store import (
    HOST,
    NAME,
    URL,
    account_status,
    activations,
    apps,
    authorisations,
    pools,
    registrations,
    sn_tickets,
    users,
)

WORKSPACE_ID = "default"
# Seed 000 getVoipUserListV2: "单次最多获取10个用户" (at most 10 users a call).
MAX_USERS_PAGE = 10
AUTHORISED = 1
NOT_AUTHORISED = 0

# A row as the database returns it (its keys may also be columns), or the values about to be written.
_Row = Mapping[Any, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 002 section 5.1.2: the media proxy is a host name such as `example.aliyundoc.com`; Parley also takes a port.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


class LicenceType(IntEnum):
    """Seed 000 `voip_activate_type_e`; the numbers are the proto's `LicenceType`."""

    AUDIO_CALL = 1
    VIDEO_CALL = 2


@dataclass(frozen=True)
class AppSettings:
    """What 002 section 5.1.2 lets the console configure per app."""

    auto_record: bool = False
    record_callback_url: str = ""
    room_status_callback_url: str = ""
    media_proxy: str = ""


@dataclass(frozen=True)
class AppRecord:
    biz_name: str
    app_id: str
    workspace_id: str
    name: str
    # Base64 of SubjectPublicKeyInfo DER.
    public_key: str
    settings: AppSettings
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VerifiedSignature:
    app_id: str
    workspace_id: str
    expire_time_ms: int


@dataclass(frozen=True)
class PoolRecord:
    biz_name: str
    model_id: str
    licence_type: LicenceType
    total: int
    used: int


@dataclass(frozen=True)
class ActivationRecord:
    biz_name: str
    model_id: str
    sn: str
    licence_type: LicenceType
    activated_at: datetime
    # False when the device was already activated: activation is idempotent and consumed nothing.
    newly_activated: bool


@dataclass(frozen=True)
class BatchActivationResult:
    sn: str
    activation: ActivationRecord | None
    # 0 when the device is activated (now or before); otherwise the error's code and message.
    code: int
    msg: str


@dataclass(frozen=True)
class SnTicketRecord:
    # Handed out once; only its hash is stored.
    token: str
    sn: str
    expires_at: datetime


@dataclass(frozen=True)
class RegistrationRecord:
    biz_name: str
    sn: str
    # Handed to the device once (the seed's "key file"); only its hash is stored.
    device_secret: str
    registered_at: datetime
    # True when this registration replaced an earlier one (factory reset).
    replaced: bool


@dataclass(frozen=True)
class DeviceRecord:
    biz_name: str
    model_id: str
    sn: str
    licence_type: LicenceType


@dataclass(frozen=True)
class AuthorisationRecord:
    biz_name: str
    sn: str
    open_id: str
    # 1 authorised, 0 revoked or refused (seed 000 onUpdateAuthorizeStatus).
    status: int
    updated_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Facts(Protocol):
    """Where the facts others may hear of go, written in the transaction that makes them true
    (`services.licence.facts.OutboxFacts` stages them as events); `committed` follows the commit."""

    async def app_created(self, connection: AsyncConnection, app: AppRecord) -> None: ...

    async def app_changed(
        self, connection: AsyncConnection, app: AppRecord, *, key_rotated: bool = False, deleted: bool = False
    ) -> None: ...

    async def device_activated(self, connection: AsyncConnection, activation: ActivationRecord) -> None: ...

    async def device_registered(
        self, connection: AsyncConnection, registration: RegistrationRecord
    ) -> None: ...

    async def authorisation_changed(
        self, connection: AsyncConnection, authorisation: AuthorisationRecord
    ) -> None: ...

    def committed(self) -> None: ...


class Licensing:
    def __init__(
        self,
        engine: AsyncEngine,
        master_key: keys.MasterKey,
        *,
        facts: Facts,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._engine = engine
        self._master_key = master_key
        self._facts = facts
        self._clock = clock

    # Call apps.

    async def create_app(self, name: str, settings: AppSettings) -> tuple[AppRecord, str]:
        """The new app and its private key (Base64 PKCS#8 DER), which Parley shows this once."""
        values: dict[str, Any] = {"name": _valid_name(name), **_settings_values(settings)}
        private_key = await _generate_private_key()
        app_id = f"PARLEY{secrets.randbits(52):013X}"
        now = self._clock()
        values.update(
            biz_name=f"biz{secrets.randbits(48):012x}",
            app_id=app_id,
            workspace_id=WORKSPACE_ID,
            public_key=keys.export_public_key(private_key.public_key()),
            private_key_sealed=self._master_key.seal(private_key, app_id=app_id),
            created_at=now,
            updated_at=now,
        )
        app = _app_record(values)
        async with self._engine.begin() as connection:
            await connection.execute(apps.insert().values(values))
            await self._facts.app_created(connection, app)
        self._facts.committed()
        return app, keys.export_private_key(private_key)

    async def list_apps(self) -> list[AppRecord]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(select(apps).order_by(apps.c.created_at, apps.c.biz_name))
        return [_app_record(row) for row in rows.mappings()]

    async def get_app(self, biz_name: str) -> AppRecord:
        async with self._engine.connect() as connection:
            return _app_record(await _require_app(connection, biz_name))

    async def update_app(
        self, biz_name: str, *, name: str | None = None, settings: AppSettings | None = None
    ) -> AppRecord:
        """Rename and/or replace the settings; what is None stays as it is."""
        changes: dict[str, Any] = {"updated_at": self._clock()}
        if name is not None:
            changes["name"] = _valid_name(name)
        if settings is not None:
            changes.update(_settings_values(settings))
        async with self._engine.begin() as connection:
            await _update_app(connection, biz_name, changes)
            app = _app_record(await _require_app(connection, biz_name))
            await self._facts.app_changed(connection, app)
        self._facts.committed()
        return app

    async def rotate_key(self, biz_name: str) -> tuple[AppRecord, str]:
        """A new key pair; signatures made with the old key stop verifying at once."""
        private_key = await _generate_private_key()
        async with self._engine.begin() as connection:
            # The app_id is the sealing's associated data and never changes, so reading it first is safe.
            app = await _require_app(connection, biz_name)
            changes = {
                "public_key": keys.export_public_key(private_key.public_key()),
                "private_key_sealed": self._master_key.seal(private_key, app_id=app["app_id"]),
                "updated_at": self._clock(),
            }
            await _update_app(connection, biz_name, changes)
            rotated = _app_record({**app, **changes})
            await self._facts.app_changed(connection, rotated, key_rotated=True)
        self._facts.committed()
        return rotated, keys.export_private_key(private_key)

    async def delete_app(self, biz_name: str) -> AppRecord:
        """Delete the app with everything under it: licence pools (used or not), activations, snTickets,
        registrations, users and authorisations. Its devices can no longer call (-2) and their sns may be
        activated again, under any app. The bizName and appId are random, so they are not reused."""
        async with self._engine.begin() as connection:
            app = await _require_app(connection, biz_name)
            app_sns = select(activations.c.sn).where(activations.c.biz_name == biz_name)
            await connection.execute(delete(registrations).where(registrations.c.sn.in_(app_sns)))
            # Children before parents: the foreign keys hold even while this runs.
            for table in (authorisations, sn_tickets, activations, pools, users, account_status, apps):
                await connection.execute(delete(table).where(table.c.biz_name == biz_name))
            deleted = _app_record(app)
            await self._facts.app_changed(connection, deleted, deleted=True)
        self._facts.committed()
        return deleted

    # Signatures (seed 002 section 4, temporary signatures section 5.3).

    async def issue_signature(self, biz_name: str, uid: str, ttl: str) -> signatures.TemporarySignature:
        async with self._engine.connect() as connection:
            app = await _require_app(connection, biz_name)
        private_key = self._master_key.open(app["private_key_sealed"], app_id=app["app_id"])
        return signatures.sign_temporary(
            private_key,
            biz_name=biz_name,
            app_id=app["app_id"],
            workspace_id=app["workspace_id"],
            uid=uid,
            ttl=ttl,
            now_ms=_epoch_ms(self._clock()),
        )

    async def verify_signature(self, biz_name: str, uid: str, signature: str) -> VerifiedSignature:
        """Raises -102 with a reason saying which check failed; an unknown bizName is one of them."""
        async with self._engine.connect() as connection:
            app = await _fetch_app(connection, biz_name)
        if app is None:
            raise SIGNATURE_UNKNOWN_APP(f"no app has bizName {biz_name!r}")
        expire_time_ms = signatures.verify(
            keys.load_public_key(app["public_key"]),
            signature,
            biz_name=biz_name,
            app_id=app["app_id"],
            workspace_id=app["workspace_id"],
            uid=uid,
            now_ms=_epoch_ms(self._clock()),
        )
        return VerifiedSignature(app["app_id"], app["workspace_id"], expire_time_ms)

    # Device licences (seed 000 activateVoipLicenseV2 and the cloud batch activation API).

    async def add_licences(
        self, biz_name: str, model_id: str, licence_type: LicenceType, count: int
    ) -> PoolRecord:
        """Add `count` licences to the app's pool for this product and type, creating the pool."""
        validate_model_id(model_id)
        if count < 1:
            raise INVALID_ARGUMENT(f"count must be at least 1, got {count}")
        async with self._engine.begin() as connection:
            await _require_app(connection, biz_name)
            insert = _insert(connection, pools).values(
                biz_name=biz_name, model_id=model_id, type=licence_type.value, total=count, used=0
            )
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[pools.c.biz_name, pools.c.model_id, pools.c.type],
                    set_={"total": pools.c.total + insert.excluded.total},
                )
            )
            pool = await _fetch_pool(connection, biz_name, model_id, licence_type)
        assert pool is not None, "the upsert above wrote this pool"
        return _pool_record(pool)

    async def list_pools(self, biz_name: str) -> list[PoolRecord]:
        async with self._engine.connect() as connection:
            await _require_app(connection, biz_name)
            rows = await connection.execute(
                select(pools).where(pools.c.biz_name == biz_name).order_by(pools.c.model_id, pools.c.type)
            )
        return [_pool_record(row) for row in rows.mappings()]

    async def activate(
        self, biz_name: str, model_id: str, sn: str, licence_type: LicenceType
    ) -> ActivationRecord:
        """Activate a device, consuming one licence; activating it again the same way consumes nothing."""
        parse_sn(sn)
        validate_model_id(model_id)
        async with self._engine.connect() as connection:
            await _require_app(connection, biz_name)
            existing = await _fetch_activation(connection, sn)
        if existing is not None:
            return _same_activation(existing, biz_name, model_id, licence_type)
        now = self._clock()
        activation: ActivationRecord | None = None
        try:
            async with self._engine.begin() as connection:
                if await _consume_licence(connection, biz_name, model_id, licence_type):
                    await connection.execute(
                        activations.insert().values(
                            sn=sn,
                            biz_name=biz_name,
                            model_id=model_id,
                            type=licence_type.value,
                            activated_at=now,
                        )
                    )
                    activation = ActivationRecord(
                        biz_name, model_id, sn, licence_type, now, newly_activated=True
                    )
                    await self._facts.device_activated(connection, activation)
            if activation is not None:
                self._facts.committed()
                return activation
        except IntegrityError:
            # A concurrent activation of this sn committed first. Leaving the block rolled back this
            # transaction, the licence taken above included; the winner's activation is the answer.
            pass
        # No licence was left, or a concurrent activation of this sn won (possibly the last licence).
        async with self._engine.connect() as connection:
            existing = await _fetch_activation(connection, sn)
            if existing is not None:
                return _same_activation(existing, biz_name, model_id, licence_type)
            pool = await _fetch_pool(connection, biz_name, model_id, licence_type)
        if pool is None:
            raise LICENCE_POOL_EXHAUSTED(
                f"app {biz_name} has no {licence_type.name} licences for model_id {model_id}"
            )
        raise LICENCE_POOL_EXHAUSTED(
            f"all {pool['total']} {licence_type.name} licences of model_id {model_id} are used"
        )

    async def batch_activate(
        self, biz_name: str, model_id: str, licence_type: LicenceType, sns: Iterable[str]
    ) -> list[BatchActivationResult]:
        """Activate each sn on its own: one refused sn (bad, exhausted) does not stop the others.
        An unknown app or a bad model_id refuses the whole batch."""
        validate_model_id(model_id)
        async with self._engine.connect() as connection:
            await _require_app(connection, biz_name)
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
        async with self._engine.connect() as connection:
            activation = await _fetch_activation(connection, sn)
        if activation is None:
            raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated")
        return _activation_record(activation, newly_activated=False)

    # Registration (seed 001 registerAvtVoip / isAvtVoipRegistered).

    async def issue_sn_ticket(self, biz_name: str, sn: str) -> SnTicketRecord:
        """A ticket with which the device registers once, within 5 minutes."""
        parse_sn(sn)
        async with self._engine.begin() as connection:
            app = await _require_app(connection, biz_name)
            await _require_activation_in(connection, biz_name, sn)
            issued = tickets.issue_ticket(sn=sn, app_id=app["app_id"], now=self._clock())
            await connection.execute(
                sn_tickets.insert().values(
                    token_hash=issued.record.token_hash,
                    sn=sn,
                    biz_name=biz_name,
                    expires_at=issued.record.expires_at,
                    used_at=None,
                )
            )
        return SnTicketRecord(issued.token, sn, issued.record.expires_at)

    async def register_device(self, sn: str, ticket: str) -> RegistrationRecord:
        """Spend the ticket and give the device a new secret, replacing any earlier one."""
        parse_sn(sn)
        now = self._clock()
        token_hash = tickets.hash_credential(ticket)
        async with self._engine.connect() as connection:
            activation = await _fetch_activation(connection, sn)
            if activation is None:
                raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated and cannot register")
            tickets.check_ticket(await _fetch_ticket(connection, token_hash), sn=sn, now=now)
        secret = tickets.new_device_secret()
        async with self._engine.begin() as connection:
            spent = await connection.execute(
                update(sn_tickets)
                .where(
                    sn_tickets.c.token_hash == token_hash,
                    sn_tickets.c.used_at.is_(None),
                    sn_tickets.c.expires_at > now,
                )
                .values(used_at=now)
            )
            if spent.rowcount != 1:
                # The ticket passed check_ticket at this same `now`; only a registration racing with the
                # same ticket can have spent it since.
                raise SN_TICKET_USED()
            replaced = bool(await connection.scalar(select(exists().where(registrations.c.sn == sn))))
            insert = _insert(connection, registrations).values(
                sn=sn, secret_hash=secret.secret_hash, registered_at=now
            )
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[registrations.c.sn],
                    set_={
                        "secret_hash": insert.excluded.secret_hash,
                        "registered_at": insert.excluded.registered_at,
                    },
                )
            )
            registration = RegistrationRecord(activation["biz_name"], sn, secret.secret, now, replaced)
            await self._facts.device_registered(connection, registration)
        self._facts.committed()
        return registration

    async def is_registered(self, sn: str) -> bool:
        parse_sn(sn)
        async with self._engine.connect() as connection:
            return bool(await connection.scalar(select(exists().where(registrations.c.sn == sn))))

    async def authenticate_device(self, sn: str, secret: str) -> DeviceRecord:
        async with self._engine.connect() as connection:
            device = (
                (
                    await connection.execute(
                        select(activations, registrations.c.secret_hash)
                        .join(registrations, registrations.c.sn == activations.c.sn)
                        .where(activations.c.sn == sn)
                    )
                )
                .mappings()
                .first()
            )
        if device is None or not tickets.device_secret_matches(secret, device["secret_hash"]):
            raise DEVICE_UNAUTHENTICATED()
        return _device_record(device)

    # Authorisation (seed 000 onUpdateAuthorizeStatus / getVoipUserListV2, 003 getIotBindContactList).

    async def set_authorisation(
        self, biz_name: str, sn: str, open_id: str, authorised: bool
    ) -> AuthorisationRecord:
        """A user of the app authorises (or revokes) a device of the app; the user becomes known to it."""
        parse_sn(sn)
        validate_open_id(open_id)
        status = AUTHORISED if authorised else NOT_AUTHORISED
        now = self._clock()
        async with self._engine.begin() as connection:
            await _require_app(connection, biz_name)
            await _require_activation_in(connection, biz_name, sn)
            user = _insert(connection, users).values(biz_name=biz_name, open_id=open_id, created_at=now)
            await connection.execute(
                user.on_conflict_do_nothing(index_elements=[users.c.biz_name, users.c.open_id])
            )
            authorisation = _insert(connection, authorisations).values(
                biz_name=biz_name, sn=sn, open_id=open_id, status=status, updated_at=now
            )
            await connection.execute(
                authorisation.on_conflict_do_update(
                    index_elements=[authorisations.c.sn, authorisations.c.open_id],
                    set_={"status": status, "updated_at": now},
                )
            )
            record = AuthorisationRecord(biz_name, sn, open_id, status, now)
            await self._facts.authorisation_changed(connection, record)
        self._facts.committed()
        return record

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
        authorised = and_(authorisations.c.sn == sn, authorisations.c.status == AUTHORISED)
        async with self._engine.connect() as connection:
            if await _fetch_activation(connection, sn) is None:
                raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated")
            total = await connection.scalar(
                select(func.count()).select_from(authorisations).where(authorised)
            )
            rows = await connection.execute(
                select(authorisations)
                .where(authorised)
                .order_by(authorisations.c.id)
                .offset(offset)
                .limit(min(limit, MAX_USERS_PAGE))
            )
        return [_authorisation_record(row) for row in rows.mappings()], int(total or 0)

    async def list_authorised_devices(self, biz_name: str, open_id: str) -> list[AuthorisationRecord]:
        """The devices of the app that the user authorises, oldest authorisation first."""
        validate_open_id(open_id)
        async with self._engine.connect() as connection:
            await _require_app(connection, biz_name)
            rows = await connection.execute(
                select(authorisations)
                .where(
                    authorisations.c.biz_name == biz_name,
                    authorisations.c.open_id == open_id,
                    authorisations.c.status == AUTHORISED,
                )
                .order_by(authorisations.c.id)
            )
        return [_authorisation_record(row) for row in rows.mappings()]

    # Device calls (seed 000 doWxCloudVoipCallV2 return values).

    async def check_device_call(self, sn: str, open_id: str, model_id: str | None = None) -> DeviceRecord:
        """The device, if it may call this user now; otherwise the seed's call code, checked in this order:
        -2 not activated or not registered, -17 another model_id, -7 malformed open_id, -20 open_id of
        no app, -19 open_id of another app, -9 never authorised, -8 revoked, -15 app in arrears.

        model_id None or empty is not checked: proto3 cannot tell an empty string from an absent one.
        """
        async with self._engine.connect() as connection:
            device = (
                (
                    await connection.execute(
                        select(activations)
                        .join(registrations, registrations.c.sn == activations.c.sn)
                        .where(activations.c.sn == sn)
                    )
                )
                .mappings()
                .first()
            )
            if device is None:
                raise DEVICE_ID_INVALID(f"device {sn} is not activated and registered")
            biz_name = device["biz_name"]
            if model_id and model_id != device["model_id"]:
                raise MODEL_ID_MISMATCH(f"device {sn} is licensed for model_id {device['model_id']}")
            validate_open_id(open_id)
            if not await _user_known(connection, open_id, biz_name):
                if await _user_known(connection, open_id):
                    raise OPEN_ID_WRONG_APP(f"open_id {open_id} is not a user of app {biz_name}")
                raise OPEN_ID_UNKNOWN(f"no app knows open_id {open_id}")
            status = await connection.scalar(
                select(authorisations.c.status).where(
                    authorisations.c.sn == sn, authorisations.c.open_id == open_id
                )
            )
            if status is None:
                raise OPEN_ID_NOT_BOUND(f"open_id {open_id} never authorised device {sn}")
            if status != AUTHORISED:
                raise OPEN_ID_NOT_AUTHORISED(f"open_id {open_id} revoked device {sn}")
            if await connection.scalar(
                select(account_status.c.in_arrears).where(account_status.c.biz_name == biz_name)
            ):
                raise ACCOUNT_IN_ARREARS(f"app {biz_name} is in arrears")
        return _device_record(device)

    # Account status (billing's account events).

    async def set_account_status(self, biz_name: str, in_arrears: bool, *, event_id: str) -> bool:
        """Record billing's word on the app's account; False when this event was the last one applied.

        Billing's events are keyed by bizName, so one app's arrive in order, and a redelivery after a
        crash repeats them in that order: applying them again ends in the same state. The event need not
        name an existing app (see `store.account_status`).
        """
        if not event_id:
            raise INVALID_ARGUMENT("an account status change needs its event id")
        values = {"in_arrears": in_arrears, "last_event_id": event_id, "updated_at": self._clock()}
        async with self._engine.begin() as connection:
            changed = await connection.execute(
                update(account_status)
                .where(account_status.c.biz_name == biz_name, account_status.c.last_event_id != event_id)
                .values(values)
            )
            if changed.rowcount == 1:
                return True
            inserted = await connection.execute(
                _insert(connection, account_status)
                .values(biz_name=biz_name, **values)
                .on_conflict_do_nothing(index_elements=[account_status.c.biz_name])
            )
            return inserted.rowcount == 1


async def _generate_private_key() -> rsa.RSAPrivateKey:
    # An RSA-2048 key takes tens to hundreds of milliseconds to find; the event loop serves others meanwhile.
    return await asyncio.to_thread(keys.generate_private_key)


def _epoch_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


def _valid_name(name: str) -> str:
    stripped = name.strip()
    if not 1 <= len(stripped) <= NAME:
        raise INVALID_ARGUMENT(f"an app's name is 1 to {NAME} characters")
    return stripped


def _settings_values(settings: AppSettings) -> dict[str, Any]:
    # 002 section 5.1.2: both callback addresses are "使用 HTTP 或 HTTPS 协议的 URL".
    for field, url in (
        ("record_callback_url", settings.record_callback_url),
        ("room_status_callback_url", settings.room_status_callback_url),
    ):
        if url and not _is_http_url(url):
            raise INVALID_ARGUMENT(f"{field} must be an http or https URL of at most {URL} characters")
    if settings.media_proxy and not (
        len(settings.media_proxy) <= HOST and _HOST.fullmatch(settings.media_proxy)
    ):
        raise INVALID_ARGUMENT(
            "media_proxy must be a host name such as proxy.example.com, with an optional port"
        )
    return {
        "auto_record": settings.auto_record,
        "record_callback_url": settings.record_callback_url,
        "room_status_callback_url": settings.room_status_callback_url,
        "media_proxy": settings.media_proxy,
    }


def _is_http_url(url: str) -> bool:
    if len(url) > URL or any(character.isspace() for character in url):
        return False
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port that is not a number from 0 to 65535.
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def _insert(connection: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    # INSERT ... ON CONFLICT reads the same in both databases, but SQLAlchemy builds it per dialect.
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"the licence store runs on SQLite or PostgreSQL, not {connection.dialect.name}")


async def _fetch_app(connection: AsyncConnection, biz_name: str) -> _Row | None:
    result = await connection.execute(select(apps).where(apps.c.biz_name == biz_name))
    return result.mappings().first()


async def _require_app(connection: AsyncConnection, biz_name: str) -> _Row:
    app = await _fetch_app(connection, biz_name)
    if app is None:
        raise APP_NOT_FOUND(f"no app has bizName {biz_name!r}")
    return app


async def _update_app(connection: AsyncConnection, biz_name: str, changes: _Row) -> None:
    updated = await connection.execute(update(apps).where(apps.c.biz_name == biz_name).values(changes))
    if updated.rowcount != 1:
        raise APP_NOT_FOUND(f"no app has bizName {biz_name!r}")


async def _fetch_pool(
    connection: AsyncConnection, biz_name: str, model_id: str, licence_type: LicenceType
) -> _Row | None:
    result = await connection.execute(
        select(pools).where(
            pools.c.biz_name == biz_name, pools.c.model_id == model_id, pools.c.type == licence_type.value
        )
    )
    return result.mappings().first()


async def _consume_licence(
    connection: AsyncConnection, biz_name: str, model_id: str, licence_type: LicenceType
) -> bool:
    # One statement both checks and takes: two activations can never both see the last licence free.
    consumed = await connection.execute(
        update(pools)
        .where(
            pools.c.biz_name == biz_name,
            pools.c.model_id == model_id,
            pools.c.type == licence_type.value,
            pools.c.used < pools.c.total,
        )
        .values(used=pools.c.used + 1)
    )
    return consumed.rowcount == 1


async def _fetch_activation(connection: AsyncConnection, sn: str) -> _Row | None:
    result = await connection.execute(select(activations).where(activations.c.sn == sn))
    return result.mappings().first()


async def _require_activation_in(connection: AsyncConnection, biz_name: str, sn: str) -> None:
    activation = await _fetch_activation(connection, sn)
    # A device of another app is "not activated" here: the answer does not reveal other apps' devices.
    if activation is None or activation["biz_name"] != biz_name:
        raise DEVICE_NOT_ACTIVATED(f"device {sn} is not activated in app {biz_name}")


def _same_activation(
    activation: _Row, biz_name: str, model_id: str, licence_type: LicenceType
) -> ActivationRecord:
    if activation["biz_name"] != biz_name:
        raise ACTIVATION_CONFLICT(f"device {activation['sn']} is activated in another app")
    if activation["model_id"] != model_id or activation["type"] != licence_type.value:
        raise ACTIVATION_CONFLICT(
            f"device {activation['sn']} is activated for model_id {activation['model_id']} "
            f"as {LicenceType(activation['type']).name}"
        )
    return _activation_record(activation, newly_activated=False)


async def _fetch_ticket(connection: AsyncConnection, token_hash: str) -> tickets.TicketRecord | None:
    result = await connection.execute(
        select(sn_tickets, apps.c.app_id)
        .join(apps, apps.c.biz_name == sn_tickets.c.biz_name)
        .where(sn_tickets.c.token_hash == token_hash)
    )
    row = result.mappings().first()
    if row is None:
        return None
    return tickets.TicketRecord(
        row["token_hash"], row["sn"], row["app_id"], row["expires_at"], row["used_at"]
    )


async def _user_known(connection: AsyncConnection, open_id: str, biz_name: str | None = None) -> bool:
    """Whether the app (any app, without biz_name) has seen this open_id."""
    condition = users.c.open_id == open_id
    if biz_name is not None:
        condition = and_(condition, users.c.biz_name == biz_name)
    return bool(await connection.scalar(select(exists().where(condition))))


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


def _activation_record(row: _Row, *, newly_activated: bool) -> ActivationRecord:
    return ActivationRecord(
        row["biz_name"],
        row["model_id"],
        row["sn"],
        LicenceType(row["type"]),
        row["activated_at"],
        newly_activated,
    )


def _device_record(row: _Row) -> DeviceRecord:
    return DeviceRecord(row["biz_name"], row["model_id"], row["sn"], LicenceType(row["type"]))


def _authorisation_record(row: _Row) -> AuthorisationRecord:
    return AuthorisationRecord(row["biz_name"], row["sn"], row["open_id"], row["status"], row["updated_at"])
