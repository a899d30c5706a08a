"""The per-connection frame rate limit and the per-uid throttle of failed connects, on a fake clock."""

from __future__ import annotations

from services.gateway.commands import ConnectThrottle
from services.gateway.websocket import TokenBucket
from tests.clock import FakeClock


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, burst=5, clock=clock)
    assert all(bucket.take() for _ in range(5))
    assert not bucket.take()
    clock.now += 0.1  # one more frame's worth
    assert bucket.take()
    assert not bucket.take()
    clock.now += 60  # refills up to the burst, no further
    assert sum(bucket.take() for _ in range(20)) == 5


def test_a_steady_sender_below_the_rate_is_never_limited() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=50, burst=1, clock=clock)
    for _ in range(1000):
        clock.now += 0.021
        assert bucket.take()


def test_a_key_is_refused_after_the_limit_of_failures_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    throttle = ConnectThrottle(limit=5, window_s=60, clock=clock)
    for _ in range(4):
        throttle.record_failure("user:b:alice")
        clock.now += 1
    assert throttle.retry_after_s("user:b:alice") == 0
    throttle.record_failure("user:b:alice")
    assert throttle.retry_after_s("user:b:alice") == 56  # the first failure, at 1000, leaves at 1060
    assert throttle.retry_after_s("user:b:bob") == 0
    clock.now = 1060
    assert throttle.retry_after_s("user:b:alice") == 0


def test_success_forgets_the_failures() -> None:
    throttle = ConnectThrottle(limit=2, window_s=60, clock=FakeClock())
    throttle.record_failure("device:p_door")
    throttle.record_failure("device:p_door")
    assert throttle.retry_after_s("device:p_door") > 0
    throttle.forget("device:p_door")
    assert throttle.retry_after_s("device:p_door") == 0


def test_keys_whose_failures_are_all_old_are_swept() -> None:
    clock = FakeClock()
    throttle = ConnectThrottle(limit=5, window_s=60, clock=clock)
    for n in range(1000):
        throttle.record_failure(f"user:b:guess{n}")
    assert len(throttle) == 1000
    clock.now += 61
    throttle.record_failure("user:b:late")
    assert len(throttle) == 1
