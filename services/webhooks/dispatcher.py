"""The delivery loop: deliveries the intake just wrote are held in memory, one queue per (endpoint, room),
and attempted in order without reading them back; the database is written once per intake batch and once
per group of attempt outcomes, not per delivery.

Durability and order, as before: a delivery is committed (by the intake) before its fact's offset is, and
an attempt's outcome is committed before the next delivery of its queue is sent. What memory holds is
leased to this process in the intake's transaction (renewed while it lives), so no other replica sends it;
a process killed holding them leaves the leases to run out and the deliveries to whoever scans first.

The database is still where deliveries come from on start, after a rebalance, for retries come due, for
an operator's redelivery, and for a queue whose older deliveries another replica (or a retry) holds: the
scan every second and the head of a queue looked up when the one before it ends (`claim_heads`) lease
those one at a time, as they always did. The intake hands a queue to memory only when the deliveries it
just wrote are all that is pending of it (or all but what memory holds already).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.errors import ParleyError
from services.core.waiting import woken_or_timed_out
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import Outcome, RetryPolicy, Verdict
from services.webhooks.sender import AttemptResult, WebhookSender
from services.webhooks.signing import SigningSecrets, signed_headers
from services.webhooks.store import PENDING, SEED_KINDS, AttemptRecord, Claim, NewDelivery, WebhookStore

log = structlog.get_logger(__name__)

POLL_INTERVAL_S = 1.0
# A stopping dispatcher waits this long for attempts being saved.
CLOSE_TIMEOUT_S = 5.0
# A rotation made on another replica signs here within this long (the old secret signs for 24 h anyway).
SECRETS_TTL_S = 5.0
# An endpoint changed on another replica (its URL, enabled) is seen here within this long; changes made
# through this one at once.
ENDPOINTS_TTL_S = 5.0

Queue = tuple[str, str]
# Attempt outcomes waiting to be saved, each with the future its attempt awaits.
Waiting = list[tuple[AttemptRecord, "asyncio.Future[None]"]]


class GroupCommit:
    """Saves attempt records in batches: those that end while one batch is being written go together in
    the next, so a busy dispatcher writes one transaction for many attempts, an idle one at once.

    One writer (SQLite): each batch is written under `lock`, which the intake's transactions take too, and
    `saved` runs, still under it, once the batch is committed: memory and database change together.
    Concurrent writers (PostgreSQL): a batch is only taken under `lock` (with the deliveries it releases,
    and entered in `in_flight`); it is written beside the intake's transaction and `saved` runs once it is
    committed. The intake counts a queue's pending deliveries without those in flight, whose outcome it
    cannot know yet, so its count means the same before and after their commit (Dispatcher.hold)."""

    def __init__(
        self,
        store: WebhookStore,
        lock: asyncio.Lock,
        *,
        released: Callable[[Sequence[AttemptRecord]], list[Claim]],
        saved: Callable[[Sequence[AttemptRecord]], None],
    ) -> None:
        self._store = store
        self._lock = lock
        self._released = released
        self._saved = saved
        self._waiting: Waiting = []
        self._writing: asyncio.Task[None] | None = None
        self._concurrent = store.concurrent_writers
        # Outcomes being committed outside `lock` (concurrent writers), by delivery row id.
        self.in_flight: dict[int, AttemptRecord] = {}

    async def save(self, record: AttemptRecord) -> None:
        saved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((record, saved))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name="webhook-group-commit")
        await asyncio.shield(saved)

    async def close(self) -> None:
        """Let the batch being written finish (its attempts happened), for a bounded time."""
        if self._writing is not None:
            with contextlib.suppress(Exception):  # a failed batch was told to its attempts
                await asyncio.wait_for(asyncio.shield(self._writing), CLOSE_TIMEOUT_S)

    def take_waiting(self) -> Waiting:
        """For a writer holding the lock (the intake): the outcomes waiting, to save in its own transaction
        with `save_in`; it calls `committed` or `failed` after."""
        batch, self._waiting = self._waiting, []
        return batch

    async def save_in(self, connection: AsyncConnection, batch: Waiting) -> None:
        records = [record for record, _ in batch]
        if records:
            await self._store.save_attempts(connection, records, self._released(records))

    def committed(self, batch: Waiting) -> None:
        """Under the lock, once the transaction that saved `batch` is committed."""
        if not batch:
            return
        self._store.outcomes_committed()
        self._saved([record for record, _ in batch])
        for _, saved in batch:
            if not saved.done():
                saved.set_result(None)

    @staticmethod
    def failed(batch: Waiting, error: BaseException) -> None:
        # An attempt told of a cancellation would end as cancelled, its queue still marked attempting.
        if not isinstance(error, Exception):
            error = RuntimeError("the transaction saving the outcome was cancelled")
        for _, saved in batch:
            if not saved.done():
                saved.set_exception(error)

    async def _write(self) -> None:
        while self._waiting:
            async with self._lock:
                # Empty when the intake's transaction took them while this waited for the lock.
                batch = self.take_waiting()
                if not batch:
                    continue
                records = [record for record, _ in batch]
                released = self._released(records)
                if not self._concurrent:
                    await self._commit(batch, records, released)
                    continue
                self.in_flight.update((record.claim.id, record) for record in records)
            await self._commit(batch, records, released)

    async def _commit(self, batch: Waiting, records: list[AttemptRecord], released: list[Claim]) -> None:
        try:
            await self._store.record(records, released)
        except Exception as error:
            self.failed(batch, error)
            return
        finally:
            for record in records:
                self.in_flight.pop(record.claim.id, None)
        self._saved(records)
        for _, saved in batch:
            if not saved.done():
                saved.set_result(None)


@dataclass
class HeldQueue:
    """The deliveries of one (endpoint, room) this process holds, oldest first; the first is attempted."""

    claims: deque[Claim] = field(default_factory=deque)
    # Every pending delivery of the queue is here, so the intake may add new ones behind them.
    complete: bool = True
    attempting: bool = False
    # Forgotten (`Dispatcher._drop`): an intake that counted with it must not hold new deliveries behind
    # what it held, now the database's again.
    dropped: bool = False


class Dispatcher:
    def __init__(
        self,
        store: WebhookStore,
        sender: WebhookSender,
        policy: RetryPolicy,
        metrics: WebhookMetrics,
        *,
        concurrency: int,
        lease_s: float,
    ) -> None:
        self._store = store
        self._sender = sender
        self._policy = policy
        self._metrics = metrics
        self._slots = concurrency
        # Attempts sending now: a slot is taken from the request to the answer, not while the outcome waits
        # for its group commit (its queue waits for that, other queues need not).
        self._sending = 0
        self._lease = timedelta(seconds=lease_s)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Queues the database may have a delivery ready at the head of, in the order offered (a dict as
        # an ordered set): looked up with `claim_heads`.
        self._offers: dict[Queue, None] = {}
        self._scan_now = True
        self._held: dict[Queue, HeldQueue] = {}
        # Held queues whose head waits for a free slot, in the order they became ready.
        self._ready: dict[Queue, None] = {}
        # The held queues `hold` counted new deliveries with, checked again by `take`.
        self._counted_with: dict[Queue, HeldQueue] = {}
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._secret_cache: dict[str, tuple[float, SigningSecrets]] = {}
        self._endpoint_cache: dict[str, tuple[float, Row[Any] | None]] = {}
        # The intake's transactions and the saving of outcomes take turns: what memory holds is then
        # always what the database says this process holds.
        self.writing = asyncio.Lock()
        self._saving = GroupCommit(store, self.writing, released=self._released_by, saved=self._settle)

    def wake(self) -> None:
        """Scan for everything due now (an operator's redelivery, a test event)."""
        self._scan_now = True
        self._wake.set()

    def offer(self, queues: Iterable[Queue]) -> None:
        """These (endpoint, key) queues may have a delivery ready at their head in the database."""
        for queue in queues:
            # A queue held here looks itself up when it runs out (if it is not complete).
            if queue not in self._held:
                self._offers[queue] = None
        self._wake.set()

    def endpoints_changed(self) -> None:
        """An endpoint was changed through this replica: attempts use its new URL and state from now."""
        self._endpoint_cache.clear()

    # Deliveries straight from the intake

    async def save_outcomes(self, connection: AsyncConnection) -> Waiting:
        """In the intake's transaction (under `writing`): the attempt outcomes waiting for a group commit
        are saved in it, so they wait for one transaction, not for the intake's and then their own. The
        intake passes them to `hold`, then to `outcomes_committed` or `outcomes_failed`. With concurrent
        writers nothing: the group commit does not wait for the intake's transaction there."""
        if self._store.concurrent_writers:
            return []
        batch = self._saving.take_waiting()
        await self._saving.save_in(connection, batch)
        return batch

    def outcomes_committed(self, batch: Waiting) -> None:
        """Under `writing`, the intake's transaction committed: the next delivery of each queue may go."""
        self._saving.committed(batch)

    def outcomes_failed(self, batch: Waiting, error: BaseException) -> None:
        self._saving.failed(batch, error)

    async def hold(
        self,
        connection: AsyncConnection,
        written: Sequence[Row[Any]],
        new: Sequence[NewDelivery],
        now: datetime,
        settling: Sequence[tuple[AttemptRecord, asyncio.Future[None]]] = (),
    ) -> list[Claim]:
        """In the intake's transaction (under `writing`): lease the pending deliveries just written whose
        queues memory may hold (nothing older is pending, or only what memory holds) and return them as
        claims, for `take` once the transaction is committed. `settling`: the outcomes saved in the same
        transaction, which `outcomes_committed` applies to memory before `take`."""
        if not written or self._policy.first_attempt_at(now) > now:
            return []  # a schedule that waits before the first attempt: the scan finds them when due
        details = {(d.endpoint_id, d.event_id): d for d in new}
        token = str(uuid.uuid4())
        by_queue: dict[Queue, list[Claim]] = {}
        for row in written:
            if row.status != PENDING:
                continue
            delivery = details[(row.endpoint_id, row.event_id)]
            by_queue.setdefault((row.endpoint_id, row.ordering_key), []).append(
                Claim.leased(row, delivery, token)
            )
        # Outcomes a group commit is committing beside this transaction (concurrent writers; the caller
        # holds `writing`, so no batch joins them until `take`): their deliveries are counted neither in
        # the database nor in memory, where they may be settled (and their heads gone) before `take`.
        in_flight = dict(self._saving.in_flight)
        # What memory held when counting: a queue forgotten since (its outcome's save failed) is not taken.
        self._counted_with = {
            queue: held for queue in by_queue if (held := self._held.get(queue)) is not None
        }
        pending = await self._store.pending_counts(connection, list(by_queue), excluding=in_flight.keys())
        # Heads whose outcome this transaction saved: no longer pending if they are done; a queue waiting
        # for a retry, or of an endpoint disabled, is dropped from memory when they are applied.
        done_heads: set[Queue] = set()
        not_held: set[Queue] = set()
        deciding = [record for record, _ in settling] + list(in_flight.values())
        disabled = {r.claim.endpoint_id for r in deciding if r.outcome is Outcome.ENDPOINT_DISABLED}
        retrying = [r.claim for r in in_flight.values() if r.outcome is Outcome.RETRYING]
        not_held.update((claim.endpoint_id, claim.ordering_key) for claim in retrying)
        for record, _ in settling:
            if self._held_behind(record.claim) is not None:
                queue = (record.claim.endpoint_id, record.claim.ordering_key)
                (not_held if record.outcome is Outcome.RETRYING else done_heads).add(queue)
        taken: list[Claim] = []
        for queue, claims in by_queue.items():
            if queue in not_held or queue[0] in disabled:
                continue
            counted_with = self._counted_with.get(queue)
            if counted_with is not None and counted_with.dropped:
                continue
            held = self._held.get(queue)
            if held is None:
                if pending.get(queue) == len(claims):
                    taken.extend(claims)
                continue
            held_counted = sum(1 for claim in held.claims if claim.id not in in_flight)
            if held.complete and pending.get(queue) == held_counted - (queue in done_heads) + len(claims):
                taken.extend(claims)
        await self._store.lease_new(connection, [claim.id for claim in taken], token, now + self._lease)
        return taken

    def take(self, taken: Sequence[Claim], written: Iterable[Queue]) -> None:
        """After the intake's commit: hold what `hold` leased and start the queues that were idle; the
        other queues written to are looked up in the database when they come free."""
        taken_queues = set()
        for claim in taken:
            queue = (claim.endpoint_id, claim.ordering_key)
            counted_with = self._counted_with.get(queue)
            if counted_with is not None and counted_with.dropped:
                # An outcome's save failed meanwhile: the older ones are the database's again, and these
                # wait for their leases to run out behind them (never sent before them).
                continue
            taken_queues.add(queue)
            self._held.setdefault(queue, HeldQueue()).claims.append(claim)
        self._counted_with = {}
        for queue in written:
            if queue in taken_queues:
                if not self._held[queue].attempting:
                    self._start(queue)
            elif queue in self._held:
                self._held[queue].complete = False
            else:
                self._offers[queue] = None
        self._wake.set()

    # The loop

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")
        self._renewing = asyncio.create_task(self._renew(), name="webhook-lease-renewal")

    async def stop(self) -> None:
        """Stop claiming; attempts in flight are cancelled and their leases run out (they are tried again)."""
        for task in (self._task, self._renewing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._saving.close()

    async def _run(self) -> None:
        last_scan = float("-inf")
        while True:
            self._wake.clear()
            try:
                self._start_ready()
                await self._claim_offered()
                if self._scan_now or time.monotonic() - last_scan >= POLL_INTERVAL_S:
                    self._scan_now = False
                    last_scan = time.monotonic()
                    while self._free() and await self._claim_scanned():
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("claim_failed", exc_info=True)
            if (self._offers or self._ready) and self._free():
                continue
            await woken_or_timed_out(self._wake, POLL_INTERVAL_S)

    async def _renew(self) -> None:
        """Extend the leases of what memory holds, three times per lease."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            tokens = {claim.lease_token for held in self._held.values() for claim in held.claims}
            try:
                await self._store.renew(sorted(tokens), datetime.now(UTC) + self._lease)
            except Exception:
                log.warning("lease_renewal_failed", exc_info=True)

    def _free(self) -> int:
        return self._slots - self._sending

    def _start(self, queue: Queue) -> None:
        """Attempt the head of a held queue now, or as soon as a slot is free."""
        if self._free():
            self._launch(self._held[queue].claims[0])
        else:
            self._ready[queue] = None

    def _start_ready(self) -> None:
        while self._ready and self._free():
            queue = next(iter(self._ready))
            del self._ready[queue]
            held = self._held.get(queue)
            if held is not None and held.claims and not held.attempting:
                self._launch(held.claims[0])

    async def _claim_offered(self) -> None:
        while self._offers and self._free():
            queues = list(itertools.islice(self._offers, self._free()))
            for queue in queues:
                del self._offers[queue]
            for claim in await self._store.claim_heads(queues, datetime.now(UTC), self._lease):
                self._hold_claimed(claim)

    async def _claim_scanned(self) -> bool:
        """Claim what the scan finds; True when it filled every free slot (more may be due)."""
        free = self._free()
        claims = await self._store.claim_due(datetime.now(UTC), free, self._lease)
        for claim in claims:
            self._hold_claimed(claim)
        return len(claims) == free

    def _hold_claimed(self, claim: Claim) -> None:
        """A head claimed from the database: held as a queue of its own that may have more behind it there."""
        queue = (claim.endpoint_id, claim.ordering_key)
        if queue in self._held:
            # Not expected (the claim skips queues with a leased delivery); never two in flight.
            log.warning("claim_of_held_queue", delivery_id=claim.delivery_id)
            return
        self._held[queue] = HeldQueue(deque([claim]), complete=False)
        self._launch(claim)

    def _launch(self, claim: Claim) -> None:
        self._held[(claim.endpoint_id, claim.ordering_key)].attempting = True
        self._sending += 1
        task = asyncio.create_task(self._attempt(claim), name=f"webhook-{claim.delivery_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    # After an attempt

    def _released_by(self, records: Sequence[AttemptRecord]) -> list[Claim]:
        """Deliveries held behind an attempt that will be retried later: the database gets them back (the
        scan takes the queue up again when the retry is due)."""
        released: list[Claim] = []
        for record in records:
            if record.outcome is Outcome.RETRYING:
                held = self._held_behind(record.claim)
                if held is not None:
                    released.extend(itertools.islice(held.claims, 1, None))
        return released

    def _settle(self, records: Sequence[AttemptRecord]) -> None:
        """The outcomes are committed: the next delivery of each queue may go."""
        for record in records:
            claim = record.claim
            queue = (claim.endpoint_id, claim.ordering_key)
            if record.outcome is Outcome.ENDPOINT_DISABLED:
                # Every pending delivery of the endpoint was dead-lettered with it.
                self._endpoint_cache.pop(claim.endpoint_id, None)
                for gone in [q for q in self._held if q[0] == claim.endpoint_id]:
                    self._drop(gone)
                continue
            if record.outcome is Outcome.RETRYING:
                if self._held_behind(claim) is not None:
                    self._drop(queue)
                continue
            self._next(queue, claim)

    def _held_behind(self, head: Claim) -> HeldQueue | None:
        """The held queue `head` is the head of; None when that queue was forgotten meanwhile (its
        endpoint disabled, its save failed)."""
        held = self._held.get((head.endpoint_id, head.ordering_key))
        if held is None or not held.claims or held.claims[0].delivery_id != head.delivery_id:
            return None
        return held

    def _next(self, queue: Queue, done: Claim) -> None:
        held = self._held_behind(done)
        if held is None:
            return
        held.attempting = False
        held.claims.popleft()
        if held.claims:
            self._start(queue)
        else:
            del self._held[queue]
            if not held.complete:
                self._offers[queue] = None
        self._wake.set()

    def _drop(self, queue: Queue) -> None:
        """Forget a queue: what it held is the database's again (released, dead-lettered, or its leases run
        out)."""
        held = self._held.pop(queue, None)
        if held is not None:
            held.dropped = True
        self._ready.pop(queue, None)

    # One attempt

    async def _target(self, endpoint_id: str) -> Row[Any] | None:
        cached = self._endpoint_cache.get(endpoint_id)
        if cached is not None and time.monotonic() - cached[0] < ENDPOINTS_TTL_S:
            return cached[1]
        row = await self._store.endpoint_target(endpoint_id)
        self._endpoint_cache[endpoint_id] = (time.monotonic(), row)
        return row

    async def _signed_post(self, claim: Claim, url: str, started_at: datetime) -> AttemptResult:
        try:
            secrets = await self._secrets(claim.biz_name, started_at)
        except ParleyError as error:
            # The secret does not open with the configured master key: nothing goes out unsigned; the
            # attempt fails with the reason (never the secret), visible to the operator, and is retried.
            return AttemptResult(0, b"", 0.0, error=error.message)
        body = claim.body.encode()
        headers = signed_headers(secrets, claim.biz_request_id, body, started_at)
        return await self._sender.post(url, body, headers)

    async def _secrets(self, biz_name: str, now: datetime) -> SigningSecrets:
        cached = self._secret_cache.get(biz_name)
        if cached is not None and time.monotonic() - cached[0] < SECRETS_TTL_S:
            return cached[1]
        secrets = await self._store.secrets(biz_name, now)
        self._secret_cache[biz_name] = (time.monotonic(), secrets)
        return secrets

    def forget_secrets(self, biz_name: str) -> None:
        """The app's secret was rotated here: sign with the new one from the next attempt."""
        self._secret_cache.pop(biz_name, None)

    async def _attempt(self, claim: Claim) -> None:
        queue = (claim.endpoint_id, claim.ordering_key)
        try:
            try:
                record, result = await self._attempted(claim)
            finally:
                self._sending -= 1
                self._wake.set()
            await self._saving.save(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The queue is forgotten and its leases run out: the database gives its deliveries again (at
            # least once, never lost).
            log.exception("attempt_not_saved", delivery_id=claim.delivery_id)
            self._drop(queue)
            return
        self._metrics.attempted(claim, record.outcome, result, time.time())
        log.info(
            "webhook_attempted",
            delivery_id=claim.delivery_id,
            endpoint_id=claim.endpoint_id,
            event_type=claim.event_type,
            attempt=record.attempt,
            outcome=record.outcome.value,
            http_status=record.http_status,
            reason=record.error,
        )

    async def _attempted(self, claim: Claim) -> tuple[AttemptRecord, AttemptResult]:
        started_at = datetime.now(UTC)
        attempt = claim.attempts + 1
        target = await self._target(claim.endpoint_id)
        if target is None or not target.enabled or not target.url:
            result = AttemptResult(0, b"", 0.0, error="endpoint disabled or deleted")
            verdict = Verdict(Outcome.DEAD_LETTERED, result.error)
        else:
            result = await self._signed_post(claim, target.url, started_at)
            verdict = self._policy.judge(
                result,
                claim.biz_request_id,
                seed=claim.kind in SEED_KINDS,
                attempts_made=attempt,
                now=datetime.now(UTC),
            )
        record = AttemptRecord(
            claim=claim,
            attempt=attempt,
            started_at=started_at,
            latency_ms=round(result.latency_s * 1000),
            http_status=result.status,
            outcome=verdict.outcome,
            error=verdict.reason,
            next_attempt_at=verdict.next_attempt_at,
        )
        return record, result
