"""Two dispatcher processes on one broker and one PostgreSQL database: they share the facts (one consumer
group) and the schedule (leases), so each event is delivered once and each room in order; SIGKILLing one
loses nothing, the other takes over its partitions and its leases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.core.config import ServiceName
from tests.integration.webhooks.conftest import (
    FAST_RETRIES,
    LOOPBACK_ALLOWED,
    RoomFacts,
    check_order,
    create_app_with_callbacks,
    room_facts_on,
)
from tests.integration.webhooks.receiver import Receiver
from tests.postgres import fresh_database_url
from tests.testing import Instance, Platform, start_platform

pytestmark = pytest.mark.integration

ROOMS = 8
# Leases long enough that a loaded machine's slow save never lets the other replica send a delivery
# again while both live; short enough that the survivor soon takes over the killed one's.
SETTINGS = {
    "webhooks": {**LOOPBACK_ALLOWED["webhooks"], **FAST_RETRIES, "attempt_timeout_s": 2.0, "lease_s": 6.0}
}
REPLICAS = ("webhooks-a", "webhooks-b")


@pytest.fixture(scope="module")
async def replicas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Platform, RoomFacts]]:
    data_dir: Path = tmp_path_factory.mktemp("replicas")
    async with (
        fresh_database_url("webhooks") as database_url,
        start_platform(
            data_dir,
            ServiceName.LICENCE,
            *(Instance(ServiceName.WEBHOOKS, process=True, key=key) for key in REPLICAS),
            settings=SETTINGS,
            database_url=database_url,
        ) as platform,
        room_facts_on(platform.kafka) as room_facts,
    ):
        yield platform, room_facts


def attempts_logged(platform: Platform, key: str) -> int:
    log_path = platform[key].log_path
    assert log_path is not None
    return log_path.read_text().count("webhook_attempted")


async def publish(
    room_facts: RoomFacts, biz_name: str, expected: dict[str, list[str]], per_room: int
) -> None:
    for _ in range(per_room):
        for room, ids in expected.items():
            ids.append(await room_facts.joined(biz_name, room, f"u{len(ids)}"))


async def test_two_replicas_deliver_each_event_once_in_order_and_survive_one_killed(
    replicas: tuple[Platform, RoomFacts],
) -> None:
    platform, room_facts = replicas
    receiver = Receiver(delay_s=0.01)
    await receiver.start()
    try:
        app = await create_app_with_callbacks(platform.licence, "replicas", room_status_url=receiver.url)
        expected: dict[str, list[str]] = {f"room-{uuid.uuid4().hex[:6]}": [] for _ in range(ROOMS)}

        # Both running: every event once, in order, and both replicas did some of the work.
        await publish(room_facts, app.biz_name, expected, per_room=10)
        total = sum(len(ids) for ids in expected.values())
        await receiver.wait_for(lambda r: len(r.acknowledged_ids()) == total, timeout_s=90)
        assert check_order(receiver, expected) == 0
        assert len(receiver.requests) == total, "an event was sent twice with both replicas alive"
        assert all(attempts_logged(platform, key) > 0 for key in REPLICAS)

        # One SIGKILLed while events come: the other delivers everything, in order. A delivery the killed
        # one had sent but not saved is sent again (at least once): at most one per room.
        await publish(room_facts, app.biz_name, expected, per_room=5)
        await platform.kill(REPLICAS[0])
        await publish(room_facts, app.biz_name, expected, per_room=5)
        total = sum(len(ids) for ids in expected.values())
        await receiver.wait_for(lambda r: len(r.acknowledged_ids()) == total, timeout_s=120)
        repeated = check_order(receiver, expected)
        assert repeated <= ROOMS
    finally:
        await receiver.stop()
