"""Key frame requests to a publisher, rate-limited per published video track.

Every subscriber that joins, falls behind or reports picture loss needs a key frame, and each key frame
costs the publisher (often a battery-powered device on a thin uplink) several times a normal frame. So
requests for one track are coalesced: at most one per interval goes upstream, and a request inside the
interval is sent when the interval ends rather than dropped, so nobody waits longer than one interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class KeyframeRequester:
    def __init__(self, send: Callable[[], Coroutine[Any, Any, None]], *, interval_s: float) -> None:
        self._send = send
        self._interval_s = interval_s
        self._last_sent: float | None = None
        self._deferred: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.sent = 0

    def request(self) -> None:
        if self._deferred is not None:
            return
        loop = asyncio.get_running_loop()
        wait = 0.0 if self._last_sent is None else self._last_sent + self._interval_s - loop.time()
        if wait <= 0:
            self._fire()
        else:
            self._deferred = loop.call_later(wait, self._fire)

    def close(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def _fire(self) -> None:
        self._deferred = None
        self._last_sent = asyncio.get_running_loop().time()
        self.sent += 1
        task = asyncio.create_task(self._send())
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("keyframe_request_failed", error=repr(task.exception()))
