"""The delivery loop: claim what is due, attempt it, save the verdict, repeat.

Attempts run concurrently up to `concurrency`; each (endpoint, room) has at most one in flight, since only
the oldest pending delivery of each is ever claimed (services/webhooks/store.py). What is ready is found
without scanning the schedule: the intake offers the queues it wrote to, and the end of an attempt offers
its own queue (the next event of that room may go now). A scan every second finds retries come due and
other replicas' leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import structlog

from services.core.errors import ParleyError
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import Outcome, RetryPolicy, Verdict
from services.webhooks.sender import AttemptResult, WebhookSender
from services.webhooks.signing import SigningSecrets, signed_headers
from services.webhooks.store import SEED_KINDS, AttemptRecord, Claim, WebhookStore

log = structlog.get_logger(__name__)

POLL_INTERVAL_S = 1.0
# A stopping dispatcher waits this long for attempts being saved.
CLOSE_TIMEOUT_S = 5.0
# A rotation made on another replica signs here within this long (the old secret signs for 24 h anyway).
SECRETS_TTL_S = 5.0


class GroupCommit:
    """Saves attempt records in batches: those that end while one batch is being written go together in
    the next, so a busy dispatcher writes one transaction for many attempts, an idle one at once."""

    def __init__(self, store: WebhookStore) -> None:
        self._store = store
        self._waiting: list[tuple[AttemptRecord, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

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

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._store.record([record for record, _ in batch])
            except Exception as error:
                for _, saved in batch:
                    if not saved.done():
                        saved.set_exception(error)
                continue
            for _, saved in batch:
                if not saved.done():
                    saved.set_result(None)


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
        self._lease = timedelta(seconds=lease_s)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Queues to look at first, in the order offered (a dict as an ordered set).
        self._offers: dict[tuple[str, str], None] = {}
        self._scan_now = True
        # Queues with an attempt in flight here.
        self._busy: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._secret_cache: dict[str, tuple[float, SigningSecrets]] = {}
        self._saving = GroupCommit(store)

    def wake(self) -> None:
        """Scan for everything due now (an operator's redelivery, a test event)."""
        self._scan_now = True
        self._wake.set()

    def offer(self, queues: Iterable[tuple[str, str]]) -> None:
        """These (endpoint, key) queues may have a delivery ready at their head (new ones were written)."""
        for queue in queues:
            # A queue with an attempt in flight offers itself again when that attempt is saved.
            if queue not in self._busy:
                self._offers[queue] = None
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Stop claiming; attempts in flight are cancelled and their leases run out (they are tried again)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._saving.close()

    async def _run(self) -> None:
        last_scan = float("-inf")
        while True:
            self._wake.clear()
            try:
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
            if self._offers and self._free():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)

    def _free(self) -> int:
        return self._slots - len(self._in_flight)

    async def _claim_offered(self) -> None:
        while self._offers and self._free():
            queues = list(itertools.islice(self._offers, self._free()))
            for queue in queues:
                del self._offers[queue]
            for claim in await self._store.claim_heads(queues, datetime.now(UTC), self._lease):
                self._launch(claim)

    async def _claim_scanned(self) -> bool:
        """Claim what the scan finds; True when it filled every free slot (more may be due)."""
        free = self._free()
        claims = await self._store.claim_due(datetime.now(UTC), free, self._lease)
        for claim in claims:
            self._launch(claim)
        return len(claims) == free

    def _launch(self, claim: Claim) -> None:
        self._busy.add((claim.endpoint_id, claim.ordering_key))
        task = asyncio.create_task(self._attempt(claim), name=f"webhook-{claim.delivery_id}")
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._attempt_done(done, claim))

    async def _signed_post(self, claim: Claim, started_at: datetime) -> AttemptResult:
        try:
            secrets = await self._secrets(claim.biz_name, started_at)
        except ParleyError as error:
            # The secret does not open with the configured master key: nothing goes out unsigned; the
            # attempt fails with the reason (never the secret), visible to the operator, and is retried.
            return AttemptResult(0, b"", 0.0, error=error.message)
        body = claim.body.encode()
        headers = signed_headers(secrets, claim.biz_request_id, body, started_at)
        return await self._sender.post(claim.url, body, headers)

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

    def _attempt_done(self, task: asyncio.Task[None], claim: Claim) -> None:
        self._in_flight.discard(task)
        self._busy.discard((claim.endpoint_id, claim.ordering_key))
        # The next delivery of the same room may go now.
        self.offer([(claim.endpoint_id, claim.ordering_key)])

    async def _attempt(self, claim: Claim) -> None:
        started_at = datetime.now(UTC)
        attempt = claim.attempts + 1
        if not claim.endpoint_enabled or not claim.url:
            result = AttemptResult(0, b"", 0.0, error="endpoint disabled or deleted")
            verdict = Verdict(Outcome.DEAD_LETTERED, result.error)
        else:
            result = await self._signed_post(claim, started_at)
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
        try:
            await self._saving.save(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is attempted again: at least once, never lost.
            log.exception("attempt_not_saved", delivery_id=claim.delivery_id)
            return
        self._metrics.attempted(claim, verdict.outcome, result, time.time())
        log.info(
            "webhook_attempted",
            delivery_id=claim.delivery_id,
            endpoint_id=claim.endpoint_id,
            event_type=claim.event_type,
            attempt=attempt,
            outcome=verdict.outcome.value,
            http_status=result.status,
            reason=verdict.reason,
        )
