"""Work handed over by code that must not wait (request handlers, the media path) and done later, one item at
a time in the order it was handed over, by one task: facts to publish, reports to send.

`stop` gives what is queued a bounded time to finish (the last facts of a stopping service), then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

Item = TypeVar("Item")


class SerialWorker(Generic[Item]):
    def __init__(self, handle: Callable[[Item], Awaitable[None]], *, name: str, limit: int = 0) -> None:
        """`handle` does one item and should not raise (what it raises is logged and the item dropped);
        `limit` bounds the queue (0: unbounded)."""
        self._handle = handle
        self._name = name
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=limit)
        self._task: asyncio.Task[None] | None = None

    def put(self, item: Item) -> bool:
        """Queue `item`; False when the queue is full (the caller decides what a dropped item means)."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, timeout_s: float) -> None:
        """Finish what is queued for at most `timeout_s`, then stop; what is left is logged, not done."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        if self._queue.qsize():
            log.warning("serial_worker_left_items", worker=self._name, count=self._queue.qsize())
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            except Exception:
                log.exception("serial_worker_item_failed", worker=self._name)
            finally:
                self._queue.task_done()
