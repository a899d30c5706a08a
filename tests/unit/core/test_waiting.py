import asyncio

from services.core.waiting import woken_or_timed_out


async def test_returns_when_woken_before_the_time_is_up() -> None:
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    async with asyncio.timeout(5):
        await woken_or_timed_out(wake, 60)
    assert wake.is_set()


async def test_returns_when_the_time_is_up_without_a_wake_up() -> None:
    wake = asyncio.Event()
    await woken_or_timed_out(wake, 0.01)
    assert not wake.is_set()


async def test_a_cancellation_that_comes_with_the_wake_up_is_kept() -> None:
    wake = asyncio.Event()

    async def loop() -> None:
        while True:
            await woken_or_timed_out(wake, 60)
            wake.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    # The wake-up and the cancellation land in the same turn of the loop, as a stop right after a wake does.
    wake.set()
    task.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
