"""Running a coroutine that does not suspend to its end on the spot, without a task.

aiortc's RTP/RTCP handlers and RTCP senders are coroutines, but what they await ends in a synchronous
`sendto`, so on the relay's receive path they finish in one `send(None)`. `run_now` runs them so, and
should one suspend after all (a transport that awaits), hands it to a task that finishes it.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

# Coroutines that suspended after all, finished by tasks kept here until they end.
_finishing: set[asyncio.Task[None]] = set()


def run_now(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` here until it ends, or, should it suspend, let a task finish it from there."""
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return
    task = asyncio.ensure_future(_finish(coroutine, awaited))
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


async def _finish(coroutine: Coroutine[Any, Any, None], awaited: Any) -> None:
    await _resume(coroutine, awaited)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], awaited: Any) -> Generator[Any, Any, None]:
    """Yield what `coroutine` awaits to the task running this, and pass the answers back to it."""
    while True:
        try:
            answer = yield awaited
        except BaseException as error:
            try:
                awaited = coroutine.throw(error)
            except StopIteration:
                return
        else:
            try:
                awaited = coroutine.send(answer)
            except StopIteration:
                return
