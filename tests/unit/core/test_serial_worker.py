"""Work handed to a SerialWorker is done one item at a time, in order; a failing item does not stop the
ones after it; stopping finishes the queue when it can and gives up on it after the timeout."""

from __future__ import annotations

import asyncio

from services.core.serial_worker import SerialWorker


async def test_items_are_done_in_order_one_at_a_time_and_a_failure_skips_only_its_item() -> None:
    done: list[int] = []
    running = 0

    async def handle(item: int) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0)
        running -= 1
        if item == 3:
            raise RuntimeError("this one fails")
        done.append(item)

    worker = SerialWorker(handle, name="test")
    worker.start()
    for item in range(6):
        assert worker.put(item)
    await worker.stop(timeout_s=5)
    assert done == [0, 1, 2, 4, 5]


async def test_a_full_queue_refuses_and_stop_gives_up_after_its_timeout() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def handle(item: str) -> None:
        await release.wait()
        done.append(item)

    worker = SerialWorker(handle, name="test", limit=2)
    worker.start()
    assert worker.put("a")
    await asyncio.sleep(0)  # the worker takes "a" and waits on it
    assert worker.put("b") and worker.put("c")
    assert not worker.put("d")
    await worker.stop(timeout_s=0.05)
    release.set()
    await asyncio.sleep(0)
    assert done == []
