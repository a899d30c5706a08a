"""The relay's reports to the room manager: sent in order off the media path, retried briefly when the room
manager is unreachable, never retried when refused, dropped rather than queued without bound."""

from __future__ import annotations

from typing import Any, cast

import grpc
from parley.rooms.v1 import relay_reports_pb2_grpc, rooms_pb2

from services.relay import room_reports
from services.relay.room_reports import RoomReports, StreamRef, WeakNetwork


def failure(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata())


class FakeRooms:
    """Answers each call with the next of `outcomes` (an error to raise, or None), then None."""

    def __init__(self, *outcomes: grpc.StatusCode | None) -> None:
        self._outcomes = list(outcomes)
        self.calls: list[Any] = []

    async def _answer(self, request: Any, timeout: float) -> None:  # noqa: ASYNC109 (the stub's signature)
        self.calls.append(request)
        outcome = self._outcomes.pop(0) if self._outcomes else None
        if outcome is not None:
            raise failure(outcome)

    ReportStreamClosed = _answer
    ReportNetworkWeak = _answer


def reports_to(rooms: FakeRooms) -> RoomReports:
    stub = cast(relay_reports_pb2_grpc.RelayReportServiceStub, rooms)
    return RoomReports(stub, relay_id="relay-1", timeout_s=1)


async def test_reports_go_in_order_and_an_unreachable_room_manager_is_tried_again(monkeypatch: Any) -> None:
    monkeypatch.setattr(room_reports, "FIRST_PAUSE_S", 0.01)
    rooms = FakeRooms(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    reports = reports_to(rooms)
    reports.start()
    reports.stream_closed(StreamRef("r1", "f1", "alice"), 5007)
    reports.network_weak(StreamRef("r1", "f1", "bob", "s1"), WeakNetwork(0, 64_000, 0.2, 0.05))
    await reports.stop(timeout_s=5)

    closed = rooms_pb2.ReportStreamClosedRequest(
        relay_id="relay-1", stream=rooms_pb2.StreamRef(room_id="r1", feed_id="f1", uid="alice"), code=5007
    )
    assert rooms.calls[:3] == [closed] * 3  # two refusals, then through
    weak = rooms.calls[3]
    assert isinstance(weak, rooms_pb2.ReportNetworkWeakRequest)
    assert (weak.stream.subscription_id, weak.bps_recv, round(weak.loss, 2)) == ("s1", 64_000, 0.2)


async def test_a_refused_report_is_not_sent_again_and_a_lasting_outage_drops_it(monkeypatch: Any) -> None:
    monkeypatch.setattr(room_reports, "FIRST_PAUSE_S", 0.01)
    rooms = FakeRooms(
        grpc.StatusCode.INVALID_ARGUMENT, *[grpc.StatusCode.UNAVAILABLE] * room_reports.ATTEMPTS
    )
    reports = reports_to(rooms)
    reports.start()
    reports.stream_closed(StreamRef("r1", "f1", "alice"), 5007)
    reports.stream_closed(StreamRef("r1", "f2", "alice"), 5004)
    reports.stream_closed(StreamRef("r1", "f3", "alice"), 5011)
    await reports.stop(timeout_s=5)
    assert [call.stream.feed_id for call in rooms.calls] == ["f1"] + ["f2"] * room_reports.ATTEMPTS + ["f3"]


async def test_the_queue_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(room_reports, "QUEUE_LIMIT", 2)
    rooms = FakeRooms()
    reports = reports_to(rooms)  # not started: nothing is taken from the queue
    for feed in ("f1", "f2", "f3"):
        reports.stream_closed(StreamRef("r1", feed, "alice"), 5007)
    reports.start()
    await reports.stop(timeout_s=5)
    assert [call.stream.feed_id for call in rooms.calls] == ["f1", "f2"]
