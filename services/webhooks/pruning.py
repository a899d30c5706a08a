"""Deliveries delivered longer ago than the retention (`PARLEY_WEBHOOKS__RETENTION_S`) are deleted with
their attempts, a batch at a time so no transaction holds the schedule long. Every replica prunes; they
delete the same rows at worst, which is harmless."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from services.webhooks.store import WebhookStore

log = structlog.get_logger(__name__)

INTERVAL_S = 60.0
BATCH = 1000


class Pruner:
    def __init__(self, store: WebhookStore, retention_s: float) -> None:
        self._store = store
        self._retention = timedelta(seconds=retention_s)
        self._task: asyncio.Task[None] | None = None

    async def prune(self, now: datetime) -> int:
        """Delete what was delivered before `now` minus the retention; how many deliveries."""
        pruned = 0
        while True:
            deleted = await self._store.prune(now - self._retention, BATCH)
            pruned += deleted
            if deleted < BATCH:
                return pruned

    async def start(self) -> None:
        if self._retention:
            self._task = asyncio.create_task(self._run(), name="webhook-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune(datetime.now(UTC))
                if pruned:
                    log.info("deliveries_pruned", count=pruned)
            except Exception:
                # The database is away: the next round tries again.
                log.warning("prune_failed", exc_info=True)
            await asyncio.sleep(INTERVAL_S)
