"""Waiting for a wake-up with a time limit, in a loop that `stop()` cancels."""

from __future__ import annotations

import asyncio
import contextlib


async def woken_or_timed_out(wake: asyncio.Event, timeout_s: float) -> None:
    """Return when `wake` is set or after `timeout_s`, whichever comes first.

    Not `asyncio.wait_for`: on Python 3.11 it loses a cancellation that arrives as the wait ends (a wake-up
    just before stop), and whoever cancelled the loop then waits for it forever.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await wake.wait()
