"""Key frame requests upstream: at most one per interval, none lost."""

from __future__ import annotations

import asyncio

from services.relay.keyframes import KeyframeRequester


async def test_requests_inside_an_interval_coalesce_into_one_sent_when_it_ends() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def send() -> None:
        sent.append(loop.time())

    requester = KeyframeRequester(send, interval_s=0.2)
    requester.request()
    await asyncio.sleep(0)
    assert len(sent) == 1
    for _ in range(5):
        requester.request()
    await asyncio.sleep(0.05)
    assert len(sent) == 1
    await asyncio.sleep(0.3)
    assert len(sent) == 2 and requester.sent == 2
    assert sent[1] - sent[0] >= 0.19


async def test_a_deferred_request_is_dropped_when_the_track_closes() -> None:
    sent: list[int] = []

    async def send() -> None:
        sent.append(1)

    requester = KeyframeRequester(send, interval_s=0.1)
    requester.request()
    requester.request()
    requester.close()
    await asyncio.sleep(0.2)
    assert sent == [1]


async def test_a_failing_send_is_logged_not_raised() -> None:
    async def send() -> None:
        raise ConnectionError("transport closed")

    requester = KeyframeRequester(send, interval_s=0.1)
    requester.request()
    await asyncio.sleep(0.01)
    assert requester.sent == 1
