from services.core.config import ServiceName, Settings
from services.core.service import ServiceRuntime


async def test_drain_hooks_run_in_order_and_a_failing_one_does_not_stop_the_rest() -> None:
    runtime = ServiceRuntime(ServiceName.RELAY, Settings(), set_global_tracing=False)
    ran: list[str] = []

    async def first() -> None:
        ran.append("first")
        raise RuntimeError("the streams would not end")

    async def second() -> None:
        ran.append("second")

    runtime.on_drain(first)
    runtime.on_drain(second)
    await runtime.drain()
    assert ran == ["first", "second"]
