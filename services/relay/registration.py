"""The relay's standing with the room manager: it registers once it serves, then reports its load every
third of the lease the room manager answered, and registers again whenever a report is not recognised
(the room manager restarted, or a report came too late). Until it is registered it retries, less often
after each failure (at most every 5 s). Failures are logged once per outage and never stop the relay:
rooms already placed here keep being served without the room manager.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog
from parley.rooms.v1 import relay_reports_pb2_grpc, rooms_pb2

from services.relay.relay import Relay

log = structlog.get_logger(__name__)

# Until the room manager has answered a lease: retry registering after FIRST_INTERVAL_S, twice as long
# after each failed attempt, up to MAX_RETRY_INTERVAL_S (a third of the room manager's default 15 s lease,
# as often as a registered relay reports). A relay started before its room manager still registers
# within 5 s of it answering, and one without a reachable room manager wakes every 5 s, not every second:
# each attempt costs the process ~1.5 ms of CPU in gRPC (bench/README.md, "The publisher's per-datagram
# path and the relay's wake-ups").
FIRST_INTERVAL_S = 1.0
MAX_RETRY_INTERVAL_S = 5.0


class Registration:
    def __init__(
        self,
        relay: Relay,
        rooms: relay_reports_pb2_grpc.RelayReportServiceStub,
        *,
        relay_id: str,
        address: str,
        capacity: int,
        timeout_s: float,
    ) -> None:
        self._relay = relay
        self._rooms = rooms
        self.relay_id = relay_id
        self._address = address
        self._capacity = capacity
        self._timeout_s = timeout_s
        self._interval_s = FIRST_INTERVAL_S
        # The pause after the next failed attempt to register.
        self._retry_s = FIRST_INTERVAL_S
        self._registered = False
        self._reachable = True
        self.draining = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-registration")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drain(self) -> None:
        """Tell the room manager now, not at the next report, that this relay takes no new rooms."""
        self.draining = True
        await self._send()

    def _load(self) -> rooms_pb2.RelayLoad:
        return rooms_pb2.RelayLoad(
            publications=len(self._relay.feeds),
            subscriptions=len(self._relay.subscriptions),
            draining=self.draining,
        )

    async def _run(self) -> None:
        while True:
            await self._send()
            await asyncio.sleep(self._interval_s)

    async def _send(self) -> None:
        try:
            if self._registered:
                try:
                    await self._rooms.ReportRelayLoad(
                        rooms_pb2.ReportRelayLoadRequest(relay_id=self.relay_id, load=self._load()),
                        timeout=self._timeout_s,
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    self._registered = False
            if not self._registered:
                answer = await self._rooms.RegisterRelay(
                    rooms_pb2.RegisterRelayRequest(
                        relay_id=self.relay_id,
                        address=self._address,
                        capacity=self._capacity,
                        load=self._load(),
                    ),
                    timeout=self._timeout_s,
                )
                self._registered = True
                self._interval_s = answer.lease_s / 3
                self._retry_s = FIRST_INTERVAL_S
                log.info("relay_registered", relay_id=self.relay_id, address=self._address)
            self._reachable = True
        except grpc.aio.AioRpcError as error:
            if self._reachable:
                log.warning("room_manager_unreachable", status=error.code().name)
            self._reachable = False
            if not self._registered:
                self._interval_s = self._retry_s
                self._retry_s = min(self._retry_s * 2, MAX_RETRY_INTERVAL_S)
