"""What the relay tells the room manager about its streams: each publication or subscription it closed on
its own (with the seed's on_media_close code) and each stream it judged weak (services/relay/quality.py).

The media path only appends to a bounded queue; one worker sends the reports in order, each retried a few
times with a short pause. A report still refused after that is logged and dropped: the stream is closed
either way, and the room manager's bookkeeping of it ends at the latest with its participant. A queue
that overflows (a room manager down for long) drops its newest reports the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import grpc
import structlog
from parley.rooms.v1 import relay_reports_pb2_grpc, rooms_pb2

from services.core.serial_worker import SerialWorker

log = structlog.get_logger(__name__)

ATTEMPTS = 3
FIRST_PAUSE_S = 0.2
QUEUE_LIMIT = 10_000
_NOT_RETRIED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


@dataclass(frozen=True)
class StreamRef:
    """A publication (`subscription_id` empty) or a subscription of the relay."""

    room_id: str
    feed_id: str
    uid: str
    subscription_id: str = ""

    def message(self) -> rooms_pb2.StreamRef:
        return rooms_pb2.StreamRef(
            room_id=self.room_id, feed_id=self.feed_id, subscription_id=self.subscription_id, uid=self.uid
        )


@dataclass(frozen=True)
class WeakNetwork:
    """A stream judged weak over one window: bits per second its owner sent and received, and why."""

    bps_send: int
    bps_recv: int
    loss: float
    round_trip_time_s: float


class StreamReports(Protocol):
    def stream_closed(self, stream: StreamRef, code: int) -> None: ...

    def network_weak(self, stream: StreamRef, weak: WeakNetwork) -> None: ...


class NoReports:
    """For a relay without a room manager (its own tests)."""

    def stream_closed(self, stream: StreamRef, code: int) -> None:
        pass

    def network_weak(self, stream: StreamRef, weak: WeakNetwork) -> None:
        pass


Report = rooms_pb2.ReportStreamClosedRequest | rooms_pb2.ReportNetworkWeakRequest


class RoomReports:
    def __init__(
        self, rooms: relay_reports_pb2_grpc.RelayReportServiceStub, *, relay_id: str, timeout_s: float
    ) -> None:
        self._rooms = rooms
        self._relay_id = relay_id
        self._timeout_s = timeout_s
        self._worker = SerialWorker(self._send, name="relay-room-reports", limit=QUEUE_LIMIT)

    def stream_closed(self, stream: StreamRef, code: int) -> None:
        self._put(
            rooms_pb2.ReportStreamClosedRequest(relay_id=self._relay_id, stream=stream.message(), code=code)
        )

    def network_weak(self, stream: StreamRef, weak: WeakNetwork) -> None:
        self._put(
            rooms_pb2.ReportNetworkWeakRequest(
                relay_id=self._relay_id,
                stream=stream.message(),
                bps_send=weak.bps_send,
                bps_recv=weak.bps_recv,
                loss=weak.loss,
                round_trip_time_s=weak.round_trip_time_s,
            )
        )

    def start(self) -> None:
        self._worker.start()

    async def stop(self, timeout_s: float) -> None:
        """Send what is queued (a stopping relay's closes among it) for at most `timeout_s`, then stop."""
        await self._worker.stop(timeout_s)

    def _put(self, report: Report) -> None:
        if not self._worker.put(report):
            log.warning("room_report_dropped", report=type(report).__name__, reason="queue full")

    async def _send(self, report: Report) -> None:
        pause_s = FIRST_PAUSE_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if isinstance(report, rooms_pb2.ReportStreamClosedRequest):
                    await self._rooms.ReportStreamClosed(report, timeout=self._timeout_s)
                else:
                    await self._rooms.ReportNetworkWeak(report, timeout=self._timeout_s)
                return
            except grpc.aio.AioRpcError as error:
                # A refused report would be refused again.
                if attempt == ATTEMPTS or error.code() in _NOT_RETRIED:
                    log.warning(
                        "room_report_failed",
                        report=type(report).__name__,
                        room_id=report.stream.room_id,
                        status=error.code().name,
                    )
                    return
                await asyncio.sleep(pause_s)
                pause_s *= 2
