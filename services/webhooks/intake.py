"""Facts in, deliveries out: every event on the catalogue's topics becomes the deliveries it makes (a seed
callback to the app's URL, CloudEvents to the endpoints subscribed to its type), written to the schedule
before the event's offset is committed. An event handled twice writes nothing the second time."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf.message import Message
from parley.licence.v1 import events_pb2 as licence_events
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.events import Envelope, RawEvent
from services.webhooks import bodies
from services.webhooks.apps import AppDirectory, AppInfo
from services.webhooks.dispatcher import Dispatcher, Waiting
from services.webhooks.policy import RetryPolicy
from services.webhooks.store import (
    CLOUDEVENTS,
    PENDING,
    SEED_KINDS,
    NewDelivery,
    WebhookStore,
    endpoints,
    seed_endpoint_id,
)

log = structlog.get_logger(__name__)

# Other replicas' endpoint changes (and a 410's disabling) are seen within this long.
SUBSCRIPTIONS_TTL_S = ENDPOINTS_TTL_S = 5.0
APP_FACTS = {licence_events.AppCreated.DESCRIPTOR.full_name, licence_events.AppChanged.DESCRIPTOR.full_name}


@dataclass(frozen=True)
class Fact:
    """A fact that makes deliveries, decoded, with what the intake learned of it."""

    event: Message
    envelope: Envelope
    biz_name: str
    app: AppInfo | None
    # A seed callback (room status, recording), an app's own change, a type some endpoint subscribed to.
    seed: bool
    subscribed: bool
    app_fact: bool


def _seed_kind(event_type: str) -> str:
    """Which of the app's two callback URLs a seed fact goes to (bodies.seed_callback's `kind`)."""
    return "record" if event_type == bodies.RECORDING_TYPE else "room_status"


def event_time(envelope: Envelope, fallback: datetime) -> datetime:
    try:
        return datetime.fromisoformat(envelope.time.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return fallback


class Intake:
    def __init__(
        self,
        store: WebhookStore,
        apps: AppDirectory,
        policy: RetryPolicy,
        dispatcher: Dispatcher,
    ) -> None:
        self._store = store
        self._apps = apps
        self._policy = policy
        self._dispatcher = dispatcher
        self._subscribed: set[str] = set()
        self._seed_endpoints: dict[str, tuple[float, Row[Any] | None]] = {}
        self._subscribed_at = float("-inf")

    def endpoints_changed(self) -> None:
        self._subscribed_at = float("-inf")
        self._seed_endpoints.clear()

    async def _subscribed_types(self) -> set[str]:
        if time.monotonic() - self._subscribed_at > SUBSCRIPTIONS_TTL_S:
            self._subscribed = await self._store.subscribed_types()
            self._subscribed_at = time.monotonic()
        return self._subscribed

    async def on_events(self, events: list[RawEvent]) -> None:
        """Write the deliveries a batch of facts makes in one transaction (the batch's offsets are
        committed once it is written), and hand them to the dispatcher's memory in it."""
        facts = [fact for fact in [await self._read(event) for event in events] if fact is not None]
        if not facts:
            return
        now = datetime.now(UTC)
        outcomes: Waiting = []
        try:
            # With one writer (SQLite) the whole transaction holds the dispatcher's writing lock; with
            # concurrent writers (PostgreSQL) only the count of what is pending to the commit does
            # (Dispatcher.hold), and the deliveries are written beside the group commits of outcomes.
            async with contextlib.AsyncExitStack() as writing:
                if not self._store.concurrent_writers:
                    await writing.enter_async_context(self._dispatcher.writing)
                async with self._store.begin() as connection:
                    new: list[NewDelivery] = []
                    for fact in facts:
                        new.extend(await self._deliveries(connection, fact, now))
                    written = await self._store.enqueue_many(
                        connection, new, first_attempt_at=self._policy.first_attempt_at(now), now=now
                    )
                    if self._store.concurrent_writers:
                        await writing.enter_async_context(self._dispatcher.writing)
                    outcomes = await self._dispatcher.save_outcomes(connection)
                    taken = await self._dispatcher.hold(connection, written, new, now, outcomes)
                # Committed, and still under the lock: no outcome was taken for saving since `hold`.
                self._dispatcher.outcomes_committed(outcomes)
                self._dispatcher.take(
                    taken, {(row.endpoint_id, row.ordering_key) for row in written if row.status == PENDING}
                )
        except BaseException as error:
            # Endpoints remembered from a transaction that did not commit may not exist; the attempts
            # whose outcomes it held are told (their queues are dropped, their leases run out).
            self._seed_endpoints.clear()
            self._dispatcher.outcomes_failed(outcomes, error)
            raise

    async def _read(self, raw: RawEvent) -> Fact | None:
        """The fact decoded with the app it concerns, or None when it makes no delivery."""
        envelope = raw.envelope
        seed = envelope.type in bodies.ROOM_STATUS_TYPES or envelope.type == bodies.RECORDING_TYPE
        app_fact = envelope.type in APP_FACTS
        subscribed = envelope.type in await self._subscribed_types()
        if not (seed or app_fact or subscribed):
            return None
        event = bodies.decode(raw.payload, envelope.type)
        if event is None:
            log.warning(
                "event_skipped", reason="undecodable payload", ce_id=envelope.id, ce_type=envelope.type
            )
            return None
        app: AppInfo | None = None
        if isinstance(event, licence_events.AppCreated | licence_events.AppChanged):
            deleted = isinstance(event, licence_events.AppChanged) and event.deleted
            app = self._apps.learn(event.app, deleted=deleted)
        biz_name = bodies.biz_name_of(event)
        if not biz_name:
            log.warning("event_skipped", reason="no biz_name", ce_id=envelope.id, ce_type=envelope.type)
            return None
        if seed or app_fact:
            app = app if app_fact else await self._apps.get(biz_name)
        if seed and app is None:
            log.info("callback_skipped", reason="no such app", biz_name=biz_name, ce_id=envelope.id)
        # An app without a URL for this callback has no seed endpoint to call (sync_seed_endpoint would look
        # it up to find none): a room fact of an app that set no callbacks costs no transaction.
        seed = seed and app is not None and bool(app.url(_seed_kind(envelope.type)))
        if not (seed or app_fact or subscribed):
            return None
        return Fact(event, envelope, biz_name, app, seed=seed, subscribed=subscribed, app_fact=app_fact)

    async def _seed_endpoint(
        self,
        connection: AsyncConnection,
        biz_name: str,
        kind: str,
        url: str,
        now: datetime,
        *,
        fresh: bool = False,
    ) -> Row[Any] | None:
        """The app's seed endpoint as last written here, unless its URL changed or it is older than
        ENDPOINTS_TTL_S (a 410 or an operator elsewhere may have disabled or enabled it)."""
        key = seed_endpoint_id(biz_name, kind)
        known = self._seed_endpoints.get(key)
        if not fresh and known is not None and time.monotonic() - known[0] < ENDPOINTS_TTL_S:
            if known[1] is not None and known[1].url == url:
                return known[1]
        row = await self._store.sync_seed_endpoint(connection, biz_name, kind, url, now)
        self._seed_endpoints[key] = (time.monotonic(), row)
        return row

    async def _deliveries(self, connection: AsyncConnection, fact: Fact, now: datetime) -> list[NewDelivery]:
        """The deliveries `fact` makes, with the app's seed endpoints brought up to date on the way."""
        event, envelope, biz_name, app = fact.event, fact.envelope, fact.biz_name, fact.app
        seed, subscribed, app_fact = fact.seed, fact.subscribed, fact.app_fact
        happened = event_time(envelope, now)
        new: list[NewDelivery] = []
        if app_fact and app is not None:
            for kind in SEED_KINDS:
                await self._seed_endpoint(connection, biz_name, kind, app.url(kind), now, fresh=True)
        callback = bodies.seed_callback(event, envelope, app.ids) if seed and app is not None else None
        if callback is not None and app is not None:
            endpoint = await self._seed_endpoint(
                connection, biz_name, callback.kind, app.url(callback.kind), now
            )
            if endpoint is not None:
                new.append(
                    NewDelivery(
                        endpoint_id=endpoint.endpoint_id,
                        biz_name=biz_name,
                        ordering_key=callback.room_id,
                        event_id=envelope.id,
                        event_type=envelope.type,
                        biz_request_id=envelope.id,
                        body=bodies.encode(callback.body),
                        event_time=happened,
                        disabled_reason=""
                        if endpoint.enabled
                        else f"endpoint disabled: {endpoint.disabled_reason}",
                        kind=callback.kind,
                    )
                )
        if subscribed and biz_name:
            rows = await connection.execute(
                select(endpoints).where(
                    endpoints.c.biz_name == biz_name, endpoints.c.kind == CLOUDEVENTS, endpoints.c.enabled
                )
            )
            body = bodies.encode(bodies.cloudevent(event, envelope))
            for row in rows:
                if envelope.type not in row.event_types.split():
                    continue
                new.append(
                    NewDelivery(
                        endpoint_id=row.endpoint_id,
                        biz_name=biz_name,
                        ordering_key=envelope.key or "",
                        event_id=envelope.id,
                        event_type=envelope.type,
                        biz_request_id=envelope.id,
                        body=body,
                        event_time=happened,
                        kind=CLOUDEVENTS,
                    )
                )
        return new
