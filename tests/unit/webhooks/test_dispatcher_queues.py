"""The dispatcher's in-memory queues (services/webhooks/dispatcher.py) with a fake schedule and a fake
receiver: what the intake hands over goes out one at a time per (endpoint, room), each only after the one
before it is saved (by a group commit or in the intake's transaction); a queue with older deliveries
pending elsewhere is left to the schedule; a retry hands the deliveries behind it back. Real databases
and receivers: tests/integration/webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.core.metrics import ServiceMetrics
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.policy import Outcome, RetryPolicy
from services.webhooks.sender import AttemptResult
from services.webhooks.signing import SigningSecrets, new_secret
from services.webhooks.store import PENDING, AttemptRecord, Claim, NewDelivery
from tests.webhook_deliveries import joined_delivery

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ROOM = ("b1.room_status", "room-1")


class FakeSchedule:
    """Stands in for WebhookStore: `pending` is what the database would count per queue."""

    def __init__(self, *, concurrent_writers: bool = False) -> None:
        self.concurrent_writers = concurrent_writers
        self.pending: dict[tuple[str, str], int] = {}
        # By delivery row id; counted in `pending` unless excluded.
        self.pending_ids: dict[tuple[str, str], set[int]] = {}
        self.leased: list[int] = []
        self.saved: list[tuple[list[AttemptRecord], list[Claim]]] = []
        self.heads_asked: list[tuple[str, str]] = []
        # Set by a test to hold group commits (not the intake's transactions) until it lets them finish.
        self.commit_gate: asyncio.Event | None = None
        self.commit_error: Exception | None = None

    async def pending_counts(
        self, connection: Any, queues: Sequence[tuple[str, str]], excluding: Any = ()
    ) -> dict[Any, int]:
        return {
            queue: self.pending[queue] - len(self.pending_ids.get(queue, set()) & set(excluding))
            for queue in queues
            if queue in self.pending
        }

    async def lease_new(self, connection: Any, ids: Sequence[int], token: str, until: datetime) -> None:
        self.leased.extend(ids)

    async def record(self, records: Sequence[AttemptRecord], release: Sequence[Claim] = ()) -> None:
        if self.commit_gate is not None:
            await self.commit_gate.wait()
        if self.commit_error is not None:
            raise self.commit_error
        await self.save_attempts(None, records, release)

    async def save_attempts(
        self, connection: Any, records: Sequence[AttemptRecord], release: Sequence[Claim] = ()
    ) -> None:
        self.saved.append((list(records), list(release)))
        for record in records:
            if record.outcome is not Outcome.RETRYING:
                queue = (record.claim.endpoint_id, record.claim.ordering_key)
                self.pending[queue] -= 1
                self.pending_ids.get(queue, set()).discard(record.claim.id)

    def outcomes_committed(self) -> None:
        pass

    async def claim_heads(
        self, queues: Sequence[tuple[str, str]], now: datetime, lease: timedelta
    ) -> list[Claim]:
        self.heads_asked.extend(queues)
        return []

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Claim]:
        return []

    async def renew(self, tokens: Sequence[str], until: datetime) -> None:
        pass

    async def endpoint_target(self, endpoint_id: str) -> Any:
        return SimpleNamespace(kind="room_status", url="http://receiver.test/", enabled=True)

    async def secrets(self, biz_name: str, now: datetime) -> SigningSecrets:
        return SigningSecrets(new_secret())


class FakeReceiver:
    """Stands in for WebhookSender: answers each POST when the test lets it, as the test says."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.answers: asyncio.Queue[int] = asyncio.Queue()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        biz_request_id = headers["webhook-id"]
        self.sent.append(biz_request_id)
        status = await self.answers.get()
        return AttemptResult(status, json.dumps({"bizRequestId": biz_request_id, "code": 0}).encode(), 0.001)

    async def close(self) -> None:
        pass


Running = tuple[Dispatcher, FakeSchedule, FakeReceiver]


@contextlib.asynccontextmanager
async def dispatching(*, concurrent_writers: bool) -> AsyncIterator[Running]:
    schedule, receiver = FakeSchedule(concurrent_writers=concurrent_writers), FakeReceiver()
    dispatcher = Dispatcher(
        schedule,  # type: ignore[arg-type]
        receiver,  # type: ignore[arg-type]
        RetryPolicy([0, 5, 300]),
        WebhookMetrics(ServiceMetrics("webhooks")),
        concurrency=8,
        lease_s=30,
    )
    await dispatcher.start()
    try:
        yield dispatcher, schedule, receiver
    finally:
        await dispatcher.stop()


@pytest.fixture(params=[False, True], ids=["one-writer", "concurrent-writers"])
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    async with dispatching(concurrent_writers=request.param) as parts:
        yield parts


@pytest.fixture
async def one_writer() -> AsyncIterator[Running]:
    async with dispatching(concurrent_writers=False) as parts:
        yield parts


@pytest.fixture
async def concurrent_writers() -> AsyncIterator[Running]:
    async with dispatching(concurrent_writers=True) as parts:
        yield parts


def written(*event_ids: str, first_id: int = 1) -> tuple[list[Any], list[NewDelivery]]:
    endpoint_id, room = ROOM
    rows = [
        SimpleNamespace(
            id=first_id + index,
            delivery_id=f"d-{event_id}",
            endpoint_id=endpoint_id,
            ordering_key=room,
            event_id=event_id,
            status=PENDING,
        )
        for index, event_id in enumerate(event_ids)
    ]
    new = [
        joined_delivery(event_id, room, NOW, endpoint_id=endpoint_id, biz_name="b1", kind="room_status")
        for event_id in event_ids
    ]
    return rows, new


async def hand_over(dispatcher: Dispatcher, *event_ids: str, first_id: int = 1) -> list[Claim]:
    rows, new = written(*event_ids, first_id=first_id)
    async with dispatcher.writing:
        taken = await dispatcher.hold(None, rows, new, datetime.now(UTC))  # type: ignore[arg-type]
    dispatcher.take(taken, {ROOM})
    return taken


async def until(check: Any) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.001)


async def test_a_queue_goes_one_at_a_time_each_after_the_one_before_is_saved(
    running: Running,
) -> None:
    dispatcher, schedule, receiver = running
    schedule.pending[ROOM] = 2
    assert [claim.event_id for claim in await hand_over(dispatcher, "e1", "e2")] == ["e1", "e2"]
    assert schedule.leased == [1, 2]
    await until(lambda: receiver.sent == ["e1"])
    # A third arrives while e1 is out: memory holds all that is pending, so it joins the queue.
    schedule.pending[ROOM] = 3
    assert [claim.event_id for claim in await hand_over(dispatcher, "e3", first_id=3)] == ["e3"]
    await asyncio.sleep(0.05)
    assert receiver.sent == ["e1"], "e2 went before e1's outcome was saved"
    receiver.answers.put_nowait(200)
    await until(lambda: receiver.sent == ["e1", "e2"])
    assert [record.claim.event_id for record in schedule.saved[0][0]] == ["e1"]
    receiver.answers.put_nowait(200)
    await until(lambda: receiver.sent == ["e1", "e2", "e3"])
    receiver.answers.put_nowait(200)
    await until(lambda: len(schedule.saved) == 3)
    outcomes = [(record.claim.event_id, record.outcome) for saved, _ in schedule.saved for record in saved]
    assert outcomes == [(event_id, Outcome.DELIVERED) for event_id in ("e1", "e2", "e3")]


async def test_a_queue_with_older_deliveries_pending_is_left_to_the_schedule(
    running: Running,
) -> None:
    dispatcher, schedule, receiver = running
    # One older delivery (a retry, another replica's) is pending beside the new one.
    schedule.pending[ROOM] = 2
    assert await hand_over(dispatcher, "e2", first_id=2) == []
    assert schedule.leased == []
    await until(lambda: ROOM in schedule.heads_asked)
    assert receiver.sent == []


async def test_a_retry_hands_the_deliveries_behind_it_back_to_the_schedule(
    running: Running,
) -> None:
    dispatcher, schedule, receiver = running
    schedule.pending[ROOM] = 3
    await hand_over(dispatcher, "e1", "e2", "e3")
    await until(lambda: receiver.sent == ["e1"])
    receiver.answers.put_nowait(500)
    await until(lambda: len(schedule.saved) == 1)
    (record,), released = schedule.saved[0]
    assert record.outcome is Outcome.RETRYING
    assert [claim.event_id for claim in released] == ["e2", "e3"]
    await asyncio.sleep(0.05)
    assert receiver.sent == ["e1"], "a delivery went while the one before it waits for its retry"
    # The queue is the schedule's now: a new delivery for it is not taken into memory.
    schedule.pending[ROOM] = 4
    assert await hand_over(dispatcher, "e4", first_id=4) == []


async def test_an_outcome_saved_in_the_intakes_transaction_lets_the_next_go_and_new_ones_join(
    one_writer: Running,
) -> None:
    dispatcher, schedule, receiver = one_writer
    schedule.pending[ROOM] = 1
    await hand_over(dispatcher, "e1")
    await until(lambda: receiver.sent == ["e1"])
    async with dispatcher.writing:  # an intake transaction under way: the group commit waits
        receiver.answers.put_nowait(200)
        await until(lambda: bool(dispatcher._saving._waiting))
        # The intake writes e2 and, in the same transaction, e1's outcome.
        schedule.pending[ROOM] = 2
        outcomes = await dispatcher.save_outcomes(None)  # type: ignore[arg-type]
        rows, new = written("e2", first_id=2)
        taken = await dispatcher.hold(None, rows, new, datetime.now(UTC), outcomes)  # type: ignore[arg-type]
        assert [claim.event_id for claim in taken] == ["e2"], "e1 done: memory holds all that is pending"
        assert receiver.sent == ["e1"]
        dispatcher.outcomes_committed(outcomes)
        dispatcher.take(taken, {ROOM})
    await until(lambda: receiver.sent == ["e1", "e2"])
    receiver.answers.put_nowait(200)
    await until(lambda: len(schedule.saved) == 2)
    outcomes_saved = [[record.claim.event_id for record in saved] for saved, _ in schedule.saved]
    assert outcomes_saved == [["e1"], ["e2"]], "e1's outcome was saved once, with the intake's batch"


async def e1_outcome_being_committed(running: Running, *, answer: int) -> None:
    """e1 handed over and attempted; its outcome (the receiver's `answer`) is being committed by a group
    commit that the test lets finish with `schedule.commit_gate`."""
    dispatcher, schedule, receiver = running
    schedule.pending[ROOM], schedule.pending_ids[ROOM] = 1, {1}
    await hand_over(dispatcher, "e1")
    await until(lambda: receiver.sent == ["e1"])
    schedule.commit_gate = asyncio.Event()
    receiver.answers.put_nowait(answer)
    await until(lambda: 1 in dispatcher._saving.in_flight)
    # The intake writes e2 meanwhile (its count does not see e1's commit, not yet made).
    schedule.pending[ROOM], schedule.pending_ids[ROOM] = 2, {1, 2}


@pytest.mark.parametrize("committed_before_count", [False, True])
async def test_with_concurrent_writers_new_ones_join_a_queue_whose_outcome_is_being_committed(
    concurrent_writers: Running, committed_before_count: bool
) -> None:
    dispatcher, schedule, receiver = concurrent_writers
    await e1_outcome_being_committed(concurrent_writers, answer=200)
    if committed_before_count:  # the intake's count may see that commit or not: e1 is left out either way
        schedule.pending[ROOM], schedule.pending_ids[ROOM] = 1, {2}
    assert [claim.event_id for claim in await hand_over(dispatcher, "e2", first_id=2)] == ["e2"]
    await asyncio.sleep(0.05)
    assert receiver.sent == ["e1"], "e2 went before e1's outcome was committed"
    schedule.commit_gate.set()
    await until(lambda: receiver.sent == ["e1", "e2"])


async def test_with_concurrent_writers_a_queue_whose_retry_is_being_committed_is_left_to_the_schedule(
    concurrent_writers: Running,
) -> None:
    dispatcher, schedule, receiver = concurrent_writers
    await e1_outcome_being_committed(concurrent_writers, answer=500)
    assert await hand_over(dispatcher, "e2", first_id=2) == []
    schedule.commit_gate.set()
    await until(lambda: len(schedule.saved) == 1)
    assert schedule.saved[0][0][0].outcome is Outcome.RETRYING
    await asyncio.sleep(0.05)
    assert receiver.sent == ["e1"], "e2 went while e1 waits for its retry"
    assert schedule.leased == [1], "e2 was leased to a queue that is the schedule's now"


async def test_with_concurrent_writers_new_ones_are_not_held_behind_an_outcome_whose_save_failed(
    concurrent_writers: Running,
) -> None:
    dispatcher, schedule, receiver = concurrent_writers
    await e1_outcome_being_committed(concurrent_writers, answer=200)
    rows, new = written("e2", first_id=2)
    async with dispatcher.writing:
        taken = await dispatcher.hold(None, rows, new, datetime.now(UTC))  # type: ignore[arg-type]
        assert [claim.event_id for claim in taken] == ["e2"]
        # e1's outcome fails to commit before the intake's transaction does: e1 is the database's again.
        schedule.commit_error = RuntimeError("the database went away")
        schedule.commit_gate.set()
        await until(lambda: ROOM not in dispatcher._held)
        dispatcher.take(taken, {ROOM})
    await asyncio.sleep(0.05)
    assert receiver.sent == ["e1"], "e2 went while e1, older, is pending"
    assert ROOM not in dispatcher._held
