"""The relay's registration with the room manager: retried less often after each failure, up to the
interval a registered relay reports at, and at the lease's third once registered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import grpc
from parley.rooms.v1 import relay_reports_pb2_grpc, rooms_pb2

from services.relay import registration
from services.relay.registration import Registration
from services.relay.relay import Relay


class FakeRooms:
    """Refuses to answer (UNAVAILABLE) `failures` times, then registers with a 30 s lease."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def RegisterRelay(self, request: Any, timeout: float) -> rooms_pb2.RegisterRelayResponse:  # noqa: ASYNC109 (the stub's signature)
        self.calls += 1
        if self.calls <= self.failures:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        return rooms_pb2.RegisterRelayResponse(lease_s=30)


async def test_registering_is_retried_less_often_after_each_failure_until_it_succeeds() -> None:
    rooms = FakeRooms(failures=4)
    relay = cast(Relay, SimpleNamespace(feeds={}, subscriptions={}))
    stub = cast(relay_reports_pb2_grpc.RelayReportServiceStub, rooms)
    standing = Registration(relay, stub, relay_id="relay-1", address="127.0.0.1:1", capacity=10, timeout_s=1)
    intervals = []
    for _ in range(5):
        await standing._send()
        intervals.append(standing._interval_s)
    assert intervals == [1.0, 2.0, 4.0, registration.MAX_RETRY_INTERVAL_S, 10.0]
    assert rooms.calls == 5
