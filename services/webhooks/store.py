"""The dispatcher's database: endpoints, signing secrets, deliveries (the durable schedule) and their
attempts, and the outbox of its outcome facts. SQLite by default, PostgreSQL by URL.

A delivery is written once per (endpoint, event) before the event's offset is committed, so a process
killed at any point loses none: what it had not written, Kafka gives again; what it had, it finds here.
Deliveries to one endpoint about one room (its ordering key) go in the order they were written: only the
oldest pending one of each (endpoint, key) is ever claimed, so a later event waits until the earlier one
is delivered or dead-lettered, and other rooms do not wait for it. A claim is a lease: a replica (or a
process killed mid-attempt) that never reports back frees the delivery when the lease runs out.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from parley.webhooks.v1 import events_pb2
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.db import UtcDateTime
from services.core.errors import INVALID_ARGUMENT, NOT_FOUND
from services.core.outbox import Outbox, outbox_table
from services.core.sealing import SealingKey
from services.core.timestamps import timestamp
from services.core.topics import Topic
from services.webhooks.policy import Outcome
from services.webhooks.signing import SigningSecrets, new_secret

metadata = MetaData()

endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", String(160), primary_key=True),
    Column("biz_name", String(128), nullable=False, index=True),
    # "record", "room_status" (the app's two seed URLs, kept in step with the licence service) or
    # "cloudevents" (added by an operator).
    Column("kind", String(16), nullable=False),
    Column("url", Text, nullable=False),
    # Space-separated ce_types; empty for the seed endpoints.
    Column("event_types", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

signing_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("biz_name", String(128), primary_key=True),
    # SealingKey envelopes (`v1:...`) of the `whsec_` secrets, with the biz_name as associated data.
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text, nullable=True),
    Column("previous_valid_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

deliveries = Table(
    "webhook_deliveries",
    metadata,
    # The order deliveries were written in: the order of each (endpoint, ordering key).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("endpoint_id", String(160), nullable=False),
    Column("biz_name", String(128), nullable=False),
    Column("ordering_key", String(256), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(256), nullable=False),
    Column("biz_request_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    # "pending", "delivered" or "dead".
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("lease_owner", String(36), nullable=True),
    # When the fact happened (ce_time), for latency from event to delivery.
    Column("event_time", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("last_status", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_latency_ms", Integer, nullable=False, default=0),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    Index("ix_webhook_deliveries_pending", "status", "id"),
    Index("ix_webhook_deliveries_queue", "endpoint_id", "ordering_key", "status", "id"),
    Index("ix_webhook_deliveries_app", "biz_name", "id"),
    Index("ix_webhook_deliveries_delivered", "status", "delivered_at"),
)

attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("error", Text, nullable=False, default=""),
)

outbox = outbox_table(metadata, "webhook_outbox")

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
SEED_KINDS = ("record", "room_status")
CLOUDEVENTS = "cloudevents"


_STATUS_OF = {
    Outcome.DELIVERED: DELIVERED,
    Outcome.RETRYING: PENDING,
    Outcome.DEAD_LETTERED: DEAD,
    Outcome.ENDPOINT_DISABLED: DEAD,
}


def seal_secret(key: SealingKey, secret: str, biz_name: str) -> str:
    """The stored form of an app's signing secret (also what the migration 0003 writes)."""
    return key.seal(secret.encode("utf-8"), context=biz_name)


def seed_endpoint_id(biz_name: str, kind: str) -> str:
    return f"{biz_name}.{kind}"


@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: str
    biz_name: str
    ordering_key: str
    event_id: str
    event_type: str
    biz_request_id: str
    body: str
    event_time: datetime
    # Why the endpoint takes nothing now: the delivery is written dead-lettered at once.
    disabled_reason: str = ""
    # The endpoint's kind ("record", "room_status", "cloudevents"), for a dispatcher that holds it.
    kind: str = ""


@dataclass(frozen=True)
class Claim:
    """A delivery this process holds the lease of, with what an attempt needs."""

    id: int
    delivery_id: str
    biz_name: str
    endpoint_id: str
    ordering_key: str
    # Saving an attempt needs it: a lease that ran out and was taken by another is not overwritten.
    lease_token: str
    kind: str
    event_id: str
    event_type: str
    biz_request_id: str
    body: str
    attempts: int
    event_time: datetime

    @classmethod
    def leased(cls, row: Any, details: Any, token: str, *, attempts: int = 0) -> Claim:
        """`row` is the stored delivery (its id and delivery_id); `details` what an attempt needs of it:
        a `NewDelivery` the intake just wrote, or the row itself read back with its endpoint's kind."""
        return cls(
            id=row.id,
            delivery_id=row.delivery_id,
            biz_name=details.biz_name,
            endpoint_id=details.endpoint_id,
            ordering_key=details.ordering_key,
            lease_token=token,
            kind=details.kind or "",
            event_id=details.event_id,
            event_type=details.event_type,
            biz_request_id=details.biz_request_id,
            body=details.body,
            attempts=attempts,
            event_time=details.event_time,
        )


@dataclass(frozen=True)
class AttemptRecord:
    claim: Claim
    attempt: int
    started_at: datetime
    latency_ms: int
    http_status: int
    outcome: Outcome
    error: str
    next_attempt_at: datetime | None


def _fact(record: AttemptRecord) -> events_pb2.DeliveryAttempted:
    claim = record.claim
    return events_pb2.DeliveryAttempted(
        delivery_id=claim.delivery_id,
        biz_name=claim.biz_name,
        endpoint_id=claim.endpoint_id,
        event_id=claim.event_id,
        event_type=claim.event_type,
        biz_request_id=claim.biz_request_id,
        attempt=record.attempt,
        outcome=record.outcome.value,
        http_status=record.http_status,
        latency_ms=record.latency_ms,
        error=record.error,
        next_attempt_at=timestamp(record.next_attempt_at) if record.next_attempt_at else None,
        attempted_at=timestamp(record.started_at),
    )


class WebhookStore:
    def __init__(self, engine: AsyncEngine, outbox_: Outbox, sealing_key: SealingKey) -> None:
        self._engine = engine
        self._outbox = outbox_
        # Signing secrets are written sealed and opened as they are read: the rows hold no secret.
        self._sealing_key = sealing_key

    # Endpoints

    async def sync_seed_endpoint(
        self, connection: AsyncConnection, biz_name: str, kind: str, url: str, now: datetime
    ) -> Row[Any] | None:
        """The app's seed endpoint with the URL the licence service has now (None when it has none). A
        changed URL is a new receiver: it is enabled again."""
        endpoint_id = seed_endpoint_id(biz_name, kind)
        row = (
            await connection.execute(select(endpoints).where(endpoints.c.endpoint_id == endpoint_id))
        ).first()
        if not url:
            return None
        if row is None:
            await connection.execute(
                endpoints.insert().values(
                    endpoint_id=endpoint_id,
                    biz_name=biz_name,
                    kind=kind,
                    url=url,
                    event_types="",
                    enabled=True,
                    disabled_reason="",
                    created_at=now,
                    updated_at=now,
                )
            )
        elif row.url != url:
            await connection.execute(
                update(endpoints)
                .where(endpoints.c.endpoint_id == endpoint_id)
                .values(url=url, enabled=True, disabled_reason="", updated_at=now)
            )
        return (
            await connection.execute(select(endpoints).where(endpoints.c.endpoint_id == endpoint_id))
        ).first()

    async def subscribed_types(self) -> set[str]:
        """Every ce_type some enabled CloudEvents endpoint subscribes to."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(endpoints.c.event_types).where(endpoints.c.kind == CLOUDEVENTS, endpoints.c.enabled)
            )
            return {event_type for row in rows for event_type in row.event_types.split()}

    async def list_endpoints(self, biz_name: str) -> list[Row[Any]]:
        async with self._engine.connect() as connection:
            return list(
                await connection.execute(
                    select(endpoints).where(endpoints.c.biz_name == biz_name).order_by(endpoints.c.created_at)
                )
            )

    async def create_endpoint(
        self, biz_name: str, url: str, event_types: Sequence[str], now: datetime
    ) -> Row[Any]:
        endpoint_id = f"ep_{uuid.uuid4().hex[:20]}"
        async with self._engine.begin() as connection:
            await connection.execute(
                endpoints.insert().values(
                    endpoint_id=endpoint_id,
                    biz_name=biz_name,
                    kind=CLOUDEVENTS,
                    url=url,
                    event_types=" ".join(dict.fromkeys(event_types)),
                    enabled=True,
                    disabled_reason="",
                    created_at=now,
                    updated_at=now,
                )
            )
            return await self._endpoint(connection, biz_name, endpoint_id)

    async def update_endpoint(
        self,
        biz_name: str,
        endpoint_id: str,
        *,
        url: str,
        event_types: Sequence[str],
        enabled: bool | None,
        now: datetime,
    ) -> Row[Any]:
        async with self._engine.begin() as connection:
            row = await self._endpoint(connection, biz_name, endpoint_id)
            values: dict[str, Any] = {"updated_at": now}
            if url:
                values["url"] = url
            if event_types:
                values["event_types"] = " ".join(dict.fromkeys(event_types))
            if enabled is not None:
                values["enabled"] = enabled
                values["disabled_reason"] = "" if enabled else "disabled by an operator"
            if row.kind in SEED_KINDS and ("url" in values or "event_types" in values):
                raise INVALID_ARGUMENT(
                    "the URL of a seed endpoint is the app's setting (PATCH /v1/apps/{bizName})"
                )
            await connection.execute(
                update(endpoints).where(endpoints.c.endpoint_id == endpoint_id).values(**values)
            )
            return await self._endpoint(connection, biz_name, endpoint_id)

    async def delete_endpoint(self, biz_name: str, endpoint_id: str, now: datetime) -> None:
        """Removes the endpoint; its pending deliveries are dead-lettered (they have nowhere to go)."""
        async with self._engine.begin() as connection:
            await self._endpoint(connection, biz_name, endpoint_id)
            await connection.execute(
                update(deliveries)
                .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == PENDING)
                .values(status=DEAD, last_error="endpoint deleted", lease_until=None)
            )
            await connection.execute(delete(endpoints).where(endpoints.c.endpoint_id == endpoint_id))

    async def _endpoint(self, connection: AsyncConnection, biz_name: str, endpoint_id: str) -> Row[Any]:
        row = (
            await connection.execute(
                select(endpoints).where(
                    endpoints.c.endpoint_id == endpoint_id, endpoints.c.biz_name == biz_name
                )
            )
        ).first()
        if row is None:
            raise NOT_FOUND(f"no endpoint {endpoint_id} for app {biz_name}")
        return row

    async def endpoint(self, biz_name: str, endpoint_id: str) -> Row[Any]:
        async with self._engine.connect() as connection:
            return await self._endpoint(connection, biz_name, endpoint_id)

    # Secrets

    async def secrets(self, biz_name: str, now: datetime) -> SigningSecrets:
        """The app's signing secrets; the first call for an app creates its secret."""
        async with self._engine.connect() as connection:
            row = await self._secret_row(connection, biz_name)
        if row is not None:
            return self._opened(row)
        async with self._engine.begin() as connection:
            row = await self._secret_row(connection, biz_name)
            if row is None:
                try:
                    async with connection.begin_nested():
                        await connection.execute(
                            signing_secrets.insert().values(
                                biz_name=biz_name, secret=self._sealed(new_secret(), biz_name), created_at=now
                            )
                        )
                except IntegrityError:
                    pass  # another replica created it first: use theirs
                row = await self._secret_row(connection, biz_name)
            assert row is not None
            return self._opened(row)

    async def rotate_secret(self, biz_name: str, now: datetime) -> SigningSecrets:
        current = await self.secrets(biz_name, now)
        rotated = current.rotated(now)
        async with self._engine.begin() as connection:
            await connection.execute(
                update(signing_secrets)
                .where(signing_secrets.c.biz_name == biz_name)
                .values(
                    secret=self._sealed(rotated.current, biz_name),
                    previous_secret=self._sealed(rotated.previous, biz_name) if rotated.previous else None,
                    previous_valid_until=rotated.previous_valid_until,
                    created_at=now,
                )
            )
        return rotated

    def _sealed(self, secret: str, biz_name: str) -> str:
        return seal_secret(self._sealing_key, secret, biz_name)

    def _opened(self, row: Row[Any]) -> SigningSecrets:
        def opened(sealed: str) -> str:
            return self._sealing_key.open(sealed, context=row.biz_name).decode("utf-8")

        previous = opened(row.previous_secret) if row.previous_secret else None
        return SigningSecrets(opened(row.secret), previous, row.previous_valid_until)

    @staticmethod
    async def _secret_row(connection: AsyncConnection, biz_name: str) -> Row[Any] | None:
        return (
            await connection.execute(select(signing_secrets).where(signing_secrets.c.biz_name == biz_name))
        ).first()

    # The schedule

    async def enqueue(
        self, connection: AsyncConnection, delivery: NewDelivery, *, first_attempt_at: datetime, now: datetime
    ) -> str | None:
        """Write a delivery in the caller's transaction; its id, or None when this (endpoint, event) is
        known already (the event came again)."""
        written = await self.enqueue_many(connection, [delivery], first_attempt_at=first_attempt_at, now=now)
        return written[0].delivery_id if written else None

    async def enqueue_many(
        self,
        connection: AsyncConnection,
        new: Sequence[NewDelivery],
        *,
        first_attempt_at: datetime,
        now: datetime,
    ) -> list[Row[Any]]:
        """Write deliveries in the caller's transaction, in their order, in one statement; the (id,
        delivery_id, endpoint_id, ordering_key, event_id, status) of those written. An (endpoint, event) known
        already (the event came again) writes nothing; to a disabled endpoint a delivery is written
        dead-lettered."""
        if not new:
            return []
        values = [
            {
                "delivery_id": str(uuid.uuid4()),
                "endpoint_id": delivery.endpoint_id,
                "biz_name": delivery.biz_name,
                "ordering_key": delivery.ordering_key,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "biz_request_id": delivery.biz_request_id,
                "body": delivery.body,
                "status": DEAD if delivery.disabled_reason else PENDING,
                "attempts": 0,
                "next_attempt_at": first_attempt_at,
                "event_time": delivery.event_time,
                "created_at": now,
                "last_status": 0,
                "last_error": delivery.disabled_reason,
                "last_latency_ms": 0,
            }
            for delivery in new
        ]
        # The unique (endpoint, event) makes a repeated event insert nothing. Many rows go as multi-row
        # INSERTs in pages (SQLAlchemy's "insertmanyvalues"), RETURNING only what was inserted.
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(deliveries)
            .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
            .returning(
                deliveries.c.id,
                deliveries.c.delivery_id,
                deliveries.c.endpoint_id,
                deliveries.c.ordering_key,
                deliveries.c.event_id,
                deliveries.c.status,
            )
        )
        return list(await connection.execute(statement, values))

    def begin(self) -> Any:
        return self._engine.begin()

    @property
    def concurrent_writers(self) -> bool:
        """Whether two transactions may write at once (PostgreSQL); SQLite has one writer at a time."""
        return self._engine.dialect.name == "postgresql"

    @staticmethod
    async def pending_counts(
        connection: AsyncConnection, queues: Sequence[tuple[str, str]], excluding: Collection[int] = ()
    ) -> dict[tuple[str, str], int]:
        """How many deliveries of each (endpoint, key) are pending, in the caller's transaction: whether
        the ones a dispatcher holds in memory are all there are. `excluding`: deliveries left out of the
        count (those whose outcome another transaction is committing meanwhile, pending or not)."""
        if not queues:
            return {}
        wanted = set(queues)
        conditions = [
            deliveries.c.endpoint_id.in_({endpoint_id for endpoint_id, _ in queues}),
            deliveries.c.ordering_key.in_({ordering_key for _, ordering_key in queues}),
            deliveries.c.status == PENDING,
        ]
        if excluding:
            conditions.append(deliveries.c.id.not_in(list(excluding)))
        counted = await connection.execute(
            select(deliveries.c.endpoint_id, deliveries.c.ordering_key, func.count().label("pending"))
            .where(*conditions)
            .group_by(deliveries.c.endpoint_id, deliveries.c.ordering_key)
        )
        return {
            (row.endpoint_id, row.ordering_key): int(row.pending)
            for row in counted
            if (row.endpoint_id, row.ordering_key) in wanted
        }

    @staticmethod
    async def lease_new(connection: AsyncConnection, ids: Sequence[int], token: str, until: datetime) -> None:
        """Lease deliveries written in the caller's transaction (nobody else can have seen them)."""
        if ids:
            await connection.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(lease_until=until, lease_owner=token)
            )

    async def renew(self, tokens: Sequence[str], until: datetime) -> None:
        """Extend the leases held under `tokens` (deliveries a dispatcher holds in memory, waiting their
        turn) so that no other replica takes them while this one lives."""
        if not tokens:
            return
        async with self._engine.begin() as connection:
            await connection.execute(
                update(deliveries)
                .where(deliveries.c.lease_owner.in_(tokens), deliveries.c.status == PENDING)
                .values(lease_until=until)
            )

    async def endpoint_target(self, endpoint_id: str) -> Row[Any] | None:
        """The endpoint's kind, URL and whether it is enabled; None when it was deleted."""
        async with self._engine.connect() as connection:
            return (
                await connection.execute(select(endpoints).where(endpoints.c.endpoint_id == endpoint_id))
            ).first()

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Claim]:
        """Lease up to `limit` due deliveries, each the oldest pending one of its (endpoint, key): the
        scan for retries come due and leases run out. Pending deliveries in the order written; the oldest
        of each queue come first, so the scan stops early."""
        earlier = deliveries.alias("earlier")
        due = (
            select(deliveries.c.id)
            .where(
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at <= now,
                self._lease_free(now),
                ~exists().where(
                    and_(
                        earlier.c.endpoint_id == deliveries.c.endpoint_id,
                        earlier.c.ordering_key == deliveries.c.ordering_key,
                        earlier.c.status == PENDING,
                        earlier.c.id < deliveries.c.id,
                    )
                ),
            )
            .order_by(deliveries.c.status, deliveries.c.id)
            .limit(limit)
        )
        async with self._engine.begin() as connection:
            return await self._lease(connection, list(await connection.scalars(due)), now, lease)

    async def claim_heads(
        self, queues: Sequence[tuple[str, str]], now: datetime, lease: timedelta
    ) -> list[Claim]:
        """Lease the oldest pending delivery of each (endpoint, key) that is due and that nobody holds:
        what new deliveries or the end of the ones before them made ready, found without a scan."""
        if not queues:
            return []
        # Two INs (a row-value IN makes SQLite scan) walk the queue index; a pair asked for by neither
        # is dropped here. The statement's shape is always the same, so SQLAlchemy compiles it once.
        wanted = set(queues)
        heads = (
            select(deliveries.c.endpoint_id, deliveries.c.ordering_key, func.min(deliveries.c.id).label("id"))
            .where(
                deliveries.c.endpoint_id.in_({endpoint_id for endpoint_id, _ in queues}),
                deliveries.c.ordering_key.in_({ordering_key for _, ordering_key in queues}),
                deliveries.c.status == PENDING,
            )
            .group_by(deliveries.c.endpoint_id, deliveries.c.ordering_key)
        )
        # Read first, write only when there is something to lease: most looks find a queue still busy.
        async with self._engine.connect() as connection:
            ids = [
                row.id
                for row in await connection.execute(heads)
                if (row.endpoint_id, row.ordering_key) in wanted
            ]
        if not ids:
            return []
        async with self._engine.begin() as connection:
            return await self._lease(connection, ids, now, lease)

    @staticmethod
    def _lease_free(now: datetime) -> Any:
        return deliveries.c.lease_until.is_(None) | (deliveries.c.lease_until < now)

    async def _lease(
        self, connection: AsyncConnection, ids: list[int], now: datetime, lease: timedelta
    ) -> list[Claim]:
        if not ids:
            return []
        # Another replica may have leased some since they were chosen: the lease is tested again here. Each
        # lease has its own token, so a delivery this process already holds is never handed out twice.
        token = str(uuid.uuid4())
        # Nor while another delivery of its queue is leased: a dispatcher holds a queue's deliveries in
        # memory behind the one it attempts, and a redelivered older one must not go beside them.
        held = deliveries.alias("held")
        await connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(ids),
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at <= now,
                self._lease_free(now),
                ~exists().where(
                    and_(
                        held.c.endpoint_id == deliveries.c.endpoint_id,
                        held.c.ordering_key == deliveries.c.ordering_key,
                        held.c.status == PENDING,
                        held.c.id != deliveries.c.id,
                        held.c.lease_until >= now,
                    )
                ),
            )
            .values(lease_until=now + lease, lease_owner=token)
        )
        rows = await connection.execute(
            select(deliveries, endpoints.c.kind)
            .join(endpoints, endpoints.c.endpoint_id == deliveries.c.endpoint_id, isouter=True)
            .where(deliveries.c.id.in_(ids), deliveries.c.lease_owner == token)
            .order_by(deliveries.c.id)
        )
        return [Claim.leased(row, row, token, attempts=row.attempts) for row in rows]

    async def record(self, records: Sequence[AttemptRecord], release: Sequence[Claim] = ()) -> None:
        """Save attempts and their verdicts with their facts, in one transaction; their leases end, and
        those of `release` (deliveries held behind one that waits for a retry now). An attempt whose lease
        ran out and was taken by another meanwhile changes nothing but its log."""
        if not records:
            return
        async with self._engine.begin() as connection:
            await self.save_attempts(connection, records, release)
        self._outbox.notify()

    async def save_attempts(
        self, connection: AsyncConnection, records: Sequence[AttemptRecord], release: Sequence[Claim] = ()
    ) -> None:
        """`record` in the caller's transaction (the intake's, when outcomes wait for it); the caller calls
        `outcomes_committed` once that is committed."""
        if release:
            await connection.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("held"), deliveries.c.lease_owner == bindparam("token"))
                .values(lease_until=None, lease_owner=None),
                [{"held": claim.id, "token": claim.lease_token} for claim in release],
            )
        await connection.execute(
            attempts.insert(),
            [
                {
                    "delivery_id": r.claim.delivery_id,
                    "attempt": r.attempt,
                    "started_at": r.started_at,
                    "latency_ms": r.latency_ms,
                    "http_status": r.http_status,
                    "outcome": r.outcome.value,
                    "error": r.error,
                }
                for r in records
            ],
        )
        await connection.execute(
            update(deliveries)
            .where(deliveries.c.id == bindparam("claimed"), deliveries.c.lease_owner == bindparam("token"))
            .values(
                status=bindparam("new_status"),
                attempts=bindparam("attempt"),
                next_attempt_at=bindparam("next_at"),
                delivered_at=bindparam("delivered"),
                last_status=bindparam("http_status"),
                last_error=bindparam("error"),
                last_latency_ms=bindparam("latency_ms"),
                lease_until=None,
                lease_owner=None,
            ),
            [
                {
                    "claimed": r.claim.id,
                    "token": r.claim.lease_token,
                    "new_status": _STATUS_OF[r.outcome],
                    "attempt": r.attempt,
                    "next_at": r.next_attempt_at or r.started_at,
                    "delivered": r.started_at + timedelta(milliseconds=r.latency_ms)
                    if r.outcome is Outcome.DELIVERED
                    else None,
                    "http_status": r.http_status,
                    "error": r.error,
                    "latency_ms": r.latency_ms,
                }
                for r in records
            ],
        )
        for r in records:
            if r.outcome is Outcome.ENDPOINT_DISABLED:
                await self._disable(connection, r.claim.endpoint_id, r.error, r.started_at)
        await self._outbox.stage_many(
            connection, Topic.WEBHOOK, [(_fact(r), r.claim.delivery_id) for r in records]
        )

    def outcomes_committed(self) -> None:
        """The outcome facts `save_attempts` staged are committed: the outbox publishes them now."""
        self._outbox.notify()

    async def _disable(
        self, connection: AsyncConnection, endpoint_id: str, reason: str, now: datetime
    ) -> None:
        await connection.execute(
            update(endpoints)
            .where(endpoints.c.endpoint_id == endpoint_id)
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        await connection.execute(
            update(deliveries)
            .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == PENDING)
            .values(
                status=DEAD, last_error=f"endpoint disabled: {reason}", lease_until=None, lease_owner=None
            )
        )

    async def prune(self, delivered_before: datetime, limit: int) -> int:
        """Delete up to `limit` deliveries delivered before `delivered_before`, with their attempts; how
        many. Dead-lettered ones stay: an operator may still redeliver them."""
        async with self._engine.begin() as connection:
            old = list(
                await connection.scalars(
                    select(deliveries.c.delivery_id)
                    .where(deliveries.c.status == DELIVERED, deliveries.c.delivered_at < delivered_before)
                    .limit(limit)
                )
            )
            if old:
                await connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(old)))
                await connection.execute(delete(deliveries).where(deliveries.c.delivery_id.in_(old)))
            return len(old)

    # What operators see and do

    async def list_deliveries(
        self, biz_name: str, *, limit: int, status: str = "", endpoint_id: str = ""
    ) -> list[Row[Any]]:
        query = (
            select(deliveries, endpoints.c.url)
            .join(endpoints, endpoints.c.endpoint_id == deliveries.c.endpoint_id, isouter=True)
            .where(deliveries.c.biz_name == biz_name)
        )
        if status:
            query = query.where(deliveries.c.status == status)
        if endpoint_id:
            query = query.where(deliveries.c.endpoint_id == endpoint_id)
        async with self._engine.connect() as connection:
            return list(await connection.execute(query.order_by(deliveries.c.id.desc()).limit(limit)))

    async def delivery(self, biz_name: str, delivery_id: str) -> tuple[Row[Any], list[Row[Any]]]:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(deliveries, endpoints.c.url)
                    .join(endpoints, endpoints.c.endpoint_id == deliveries.c.endpoint_id, isouter=True)
                    .where(deliveries.c.delivery_id == delivery_id, deliveries.c.biz_name == biz_name)
                )
            ).first()
            if row is None:
                raise NOT_FOUND(f"no delivery {delivery_id} for app {biz_name}")
            tried = list(
                await connection.execute(
                    select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id)
                )
            )
            return row, tried

    async def redeliver(
        self, biz_name: str, delivery_ids: Sequence[str] | None, now: datetime, endpoint_id: str = ""
    ) -> int:
        """Put dead-lettered deliveries (the given ones, or every one of the app or endpoint) back on the
        schedule from its start, in their original order. A delivered one is left as it is."""
        condition = [deliveries.c.biz_name == biz_name, deliveries.c.status == DEAD]
        if delivery_ids is not None:
            condition.append(deliveries.c.delivery_id.in_(delivery_ids))
        if endpoint_id:
            condition.append(deliveries.c.endpoint_id == endpoint_id)
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(deliveries)
                .where(*condition)
                .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None, lease_owner=None)
            )
            return int(result.rowcount or 0)
