"""When a delivery succeeded and when it is tried next (services/webhooks/policy.py)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.webhooks.policy import Outcome, RetryPolicy, answer_problem
from services.webhooks.sender import AttemptResult, retry_after_seconds

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


def answered(status: int, body: object, **extra: object) -> AttemptResult:
    return AttemptResult(status, json.dumps(body).encode(), 0.01, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (answered(200, {"bizRequestId": "r1", "code": 0}), ""),
        (answered(204, {"bizRequestId": "r1", "code": 0}), ""),
        (answered(200, {"bizRequestId": "r1", "code": 1}), "the answer's code is 1, not 0"),
        (answered(200, {"bizRequestId": "r1", "code": False}), "the answer's code is False, not 0"),
        (answered(200, {"bizRequestId": "r2", "code": 0}), "the answer does not echo the bizRequestId"),
        (answered(200, {"code": 0}), "the answer does not echo the bizRequestId"),
        (answered(200, [0]), "the answer is not a JSON object"),
        (AttemptResult(200, b"OK", 0.01), "the answer is not JSON {bizRequestId, code}"),
        (answered(500, {"bizRequestId": "r1", "code": 0}), "HTTP 500"),
        (answered(302, {}), "HTTP 302"),
        (AttemptResult(0, b"", 1.0, error="connect failed: refused"), "connect failed: refused"),
    ],
)
def test_a_seed_callback_succeeds_only_with_a_2xx_echoing_its_biz_request_id_with_code_0(
    result: AttemptResult, problem: str
) -> None:
    assert answer_problem(result, "r1", seed=True) == problem


def test_a_cloudevents_endpoint_succeeds_with_any_2xx() -> None:
    assert answer_problem(AttemptResult(202, b"", 0.01), "r1", seed=False) == ""
    assert answer_problem(AttemptResult(500, b"", 0.01), "r1", seed=False) == "HTTP 500"


def test_failures_follow_the_schedule_with_jitter_then_dead_letter() -> None:
    policy = RetryPolicy(SCHEDULE, rng=random.Random(1))
    failed = answered(500, {})
    assert policy.first_attempt_at(NOW) == NOW
    for attempts_made in range(1, len(SCHEDULE)):
        verdict = policy.judge(failed, "r1", seed=True, attempts_made=attempts_made, now=NOW)
        assert verdict.outcome is Outcome.RETRYING and verdict.reason == "HTTP 500"
        assert verdict.next_attempt_at is not None
        wait = (verdict.next_attempt_at - NOW).total_seconds()
        assert SCHEDULE[attempts_made] * 0.8 <= wait <= SCHEDULE[attempts_made] * 1.2
    last = policy.judge(failed, "r1", seed=True, attempts_made=len(SCHEDULE), now=NOW)
    assert (last.outcome, last.next_attempt_at) == (Outcome.DEAD_LETTERED, None)


def test_jitter_spreads_retries_of_deliveries_that_failed_together() -> None:
    policy = RetryPolicy(SCHEDULE, rng=random.Random(2))
    times = {
        policy.judge(answered(503, {}), "r", seed=True, attempts_made=2, now=NOW).next_attempt_at
        for _ in range(20)
    }
    assert len(times) > 15


def test_retry_after_is_honoured_but_not_beyond_a_day() -> None:
    policy = RetryPolicy(SCHEDULE, rng=random.Random(3))
    asked = policy.judge(answered(429, {}, retry_after_s=120.0), "r", seed=True, attempts_made=1, now=NOW)
    assert asked.next_attempt_at == NOW + timedelta(seconds=120)
    greedy = policy.judge(answered(503, {}, retry_after_s=10**9), "r", seed=True, attempts_made=1, now=NOW)
    assert greedy.next_attempt_at == NOW + timedelta(hours=24)


def test_410_disables_the_endpoint() -> None:
    verdict = RetryPolicy(SCHEDULE).judge(answered(410, {}), "r", seed=True, attempts_made=1, now=NOW)
    assert verdict.outcome is Outcome.ENDPOINT_DISABLED and "HTTP 410" in verdict.reason


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("30", NOW) == 30
    assert retry_after_seconds("Sun, 06 Dec 2026 12:01:00 GMT", NOW) == 60
    assert retry_after_seconds("Sun, 06 Dec 2026 11:00:00 GMT", NOW) == 0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None
