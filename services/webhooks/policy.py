"""When a delivery succeeded, and when it is tried next: pure rules, no I/O.

Success for a seed callback is what seed 002 asks of the app's server: a 2xx whose JSON body echoes the
request's `bizRequestId` with `code` 0. A CloudEvents endpoint succeeds with any 2xx. Anything else is
retried on the schedule (PARLEY_WEBHOOKS__RETRY_SCHEDULE) with jitter, not sooner than a Retry-After asks;
410 Gone disables the endpoint; after the last attempt the delivery is dead-lettered.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.webhooks.sender import AttemptResult

# Each wait is stretched or shrunk by up to this fraction, so retries of many deliveries that failed
# together (a receiver restarting) do not come back together.
JITTER = 0.2
# A Retry-After longer than this is not believed.
MAX_RETRY_AFTER = timedelta(hours=24)
GONE = 410


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    ENDPOINT_DISABLED = "endpoint_disabled"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    # Why it did not succeed; empty when it did.
    reason: str
    next_attempt_at: datetime | None = None


def answer_problem(result: AttemptResult, biz_request_id: str, *, seed: bool) -> str:
    """Why the answer is not a success, or "" when it is."""
    if result.error:
        return result.error
    if not 200 <= result.status < 300:
        return f"HTTP {result.status}"
    if not seed:
        return ""
    try:
        answer = json.loads(result.body)
    except (ValueError, UnicodeDecodeError):
        return "the answer is not JSON {bizRequestId, code}"
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    if str(answer.get("bizRequestId")) != biz_request_id:
        return "the answer does not echo the bizRequestId"
    code = answer.get("code")
    if code != 0 or isinstance(code, bool):
        return f"the answer's code is {code!r}, not 0"
    return ""


class RetryPolicy:
    def __init__(self, delays_s: list[float], *, rng: random.Random | None = None) -> None:
        """`delays_s[0]` is the wait before the first attempt, `delays_s[n]` the wait after the n-th
        failure; len(delays_s) attempts in all."""
        self._delays = delays_s
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> int:
        return len(self._delays)

    def first_attempt_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._delays[0])

    def judge(
        self, result: AttemptResult, biz_request_id: str, *, seed: bool, attempts_made: int, now: datetime
    ) -> Verdict:
        """`attempts_made` counts the attempt just judged."""
        problem = answer_problem(result, biz_request_id, seed=seed)
        if not problem:
            return Verdict(Outcome.DELIVERED, "")
        if result.status == GONE:
            return Verdict(Outcome.ENDPOINT_DISABLED, f"{problem}: the receiver says the endpoint is gone")
        if attempts_made >= self.attempts:
            return Verdict(Outcome.DEAD_LETTERED, problem)
        wait = self._delays[attempts_made] * self._rng.uniform(1 - JITTER, 1 + JITTER)
        if result.retry_after_s is not None:
            wait = max(wait, min(result.retry_after_s, MAX_RETRY_AFTER.total_seconds()))
        return Verdict(Outcome.RETRYING, problem, now + timedelta(seconds=wait))
