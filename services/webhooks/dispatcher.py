"""The delivery loop: claim what is due, attempt it, save the verdict, repeat.

Attempts run concurrently up to `concurrency`; each (endpoint, room) has at most one in flight, since only
the oldest pending delivery of each is ever claimed (services/webhooks/store.py). The loop wakes when the
intake writes a delivery and when an attempt ends (the next of its room may now go), and polls for retries
coming due and for other replicas' leases running out.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import structlog

from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import Outcome, RetryPolicy, Verdict
from services.webhooks.sender import AttemptResult, WebhookSender
from services.webhooks.signing import SigningSecrets, signed_headers
from services.webhooks.store import SEED_KINDS, AttemptRecord, Claim, WebhookStore

log = structlog.get_logger(__name__)

POLL_INTERVAL_S = 1.0
# A rotation made on another replica signs here within this long (the old secret signs for 24 h anyway).
SECRETS_TTL_S = 5.0


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
        self._task: asyncio.Task[None] | None = None
        self._secret_cache: dict[str, tuple[float, SigningSecrets]] = {}

    def wake(self) -> None:
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

    async def _run(self) -> None:
        while True:
            free = self._slots - len(self._in_flight)
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = await self._store.claim_due(datetime.now(UTC), free, self._lease)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("claim_failed", exc_info=True)
            for claim in claims:
                task = asyncio.create_task(self._attempt(claim), name=f"webhook-{claim.delivery_id}")
                self._in_flight.add(task)
                task.add_done_callback(self._attempt_done)
            if len(claims) == free and free > 0:
                continue  # more may be due
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()

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

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _attempt(self, claim: Claim) -> None:
        started_at = datetime.now(UTC)
        attempt = claim.attempts + 1
        if not claim.endpoint_enabled or not claim.url:
            result = AttemptResult(0, b"", 0.0, error="endpoint disabled or deleted")
            verdict = Verdict(Outcome.DEAD_LETTERED, result.error)
        else:
            secrets = await self._secrets(claim.biz_name, started_at)
            body = claim.body.encode()
            headers = signed_headers(secrets, claim.biz_request_id, body, started_at)
            result = await self._sender.post(claim.url, body, headers)
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
            await self._store.record(record)
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
