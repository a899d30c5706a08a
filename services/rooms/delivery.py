"""Pushes to client sessions, sent to the gateways that hold their connections (SessionDelivery.Deliver).

One worker per gateway takes what is queued for it (services/rooms/sessions.py) and sends it in as few calls
as the size limits allow, each waiting for the answer before the next, so each session's pushes arrive in
the order they were made. A
gateway that does not answer after a few attempts has lost its connections as far as the room manager
can tell: its sessions are detached, keep what they are owed in their backlogs, and are brought up to
date when they resume, or when the gateway's next heartbeat shows the connections alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import grpc
import structlog
from parley.rooms.v1 import delivery_pb2, delivery_pb2_grpc

from services.core.channels import ChannelPool
from services.rooms.pushes import Push, push_message
from services.rooms.sessions import Outbound, SessionBook

log = structlog.get_logger(__name__)

# Pushes taken at once (one per recipient): what was queued while the last call was out goes in one call
# when it fits, so that a gateway gets a room's pushes in few calls and writes a session's several pushes
# at once. With 200 in a room, each join queues ~200. The calls are made one at a time from the batch.
BATCH_LIMIT = 4096
# The most bytes one call carries: well under gRPC's 4 MB message limit, which 256 long text messages
# (8192 characters of up to 4 bytes in UTF-8) would pass.
CALL_BYTES_LIMIT = 1024 * 1024
_ATTEMPTS = 3
_FIRST_PAUSE_S = 0.2


class GatewayDelivery:
    def __init__(
        self,
        book: SessionBook,
        channels: ChannelPool,
        *,
        timeout_s: float,
        changed: Callable[[], Awaitable[None]],
    ) -> None:
        """`changed` is called after the book changed because of a delivery's answer (sessions detached)."""
        self._book = book
        self._channels = channels
        self._timeout_s = timeout_s
        self._changed = changed
        self._wakeups: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def wake(self, gateway_ids: set[str]) -> None:
        for gateway_id in gateway_ids:
            worker = self._workers.get(gateway_id)
            if worker is None or worker.done():
                self._wakeups[gateway_id] = asyncio.Event()
                self._workers[gateway_id] = asyncio.create_task(
                    self._work(gateway_id), name=f"deliver-{gateway_id}"
                )
            self._wakeups[gateway_id].set()

    async def stop(self) -> None:
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    async def _work(self, gateway_id: str) -> None:
        wakeup = self._wakeups[gateway_id]
        while True:
            wakeup.clear()
            batch = self._book.take(gateway_id, limit=BATCH_LIMIT)
            if not batch:
                if self._book.address_of(gateway_id) is None:
                    # The gateway's lease ran out and it was forgotten; a new attachment starts a new worker.
                    self._workers.pop(gateway_id, None)
                    return
                await wakeup.wait()
                continue
            await self._send(gateway_id, batch)
            await self._changed()

    async def _send(self, gateway_id: str, batch: list[Outbound]) -> None:
        sent = 0
        for items, request in _calls_within(batch, CALL_BYTES_LIMIT):
            if not await self._deliver(gateway_id, items, request):
                unsent = batch[sent:]
                log.warning("gateway_unreachable", gateway_id=gateway_id, pushes=len(unsent))
                self._book.unreachable(gateway_id, unsent)
                return
            sent += len(items)

    async def _deliver(
        self, gateway_id: str, items: list[Outbound], request: delivery_pb2.DeliverRequest
    ) -> bool:
        pause_s = _FIRST_PAUSE_S
        for attempt in range(1, _ATTEMPTS + 1):
            address = self._book.address_of(gateway_id)
            if address is None:
                return False
            try:
                stub = delivery_pb2_grpc.SessionDeliveryStub(self._channels.get(address))
                answer = await stub.Deliver(request, timeout=self._timeout_s)
            except grpc.aio.AioRpcError as error:
                log.warning(
                    "delivery_failed",
                    gateway_id=gateway_id,
                    address=address,
                    attempt=attempt,
                    status=error.code().name,
                )
                if attempt < _ATTEMPTS:
                    await asyncio.sleep(pause_s)
                    pause_s *= 2
                continue
            self._book.delivered(gateway_id, items, answer.missing_connection_ids)
            return True
        return False


# What a recipient adds to a request beyond its two ids: their tags and lengths, the recipient's own tag and
# length, and what it adds to the length of its delivery (generous: a call is cut on this estimate).
_RECIPIENT_OVERHEAD = 12
# What a delivery adds beyond its push's bytes: the push's tag and length, the delivery's tag and length.
_DELIVERY_OVERHEAD = 8


def _calls_within(
    batch: list[Outbound], bytes_limit: int
) -> Iterator[tuple[list[Outbound], delivery_pb2.DeliverRequest]]:
    """`batch` in order, cut into requests of at most `bytes_limit` bytes (one push per request at least),
    each made when the one before has been sent.
    A push to a whole room is one object queued for each participant, one after the other: it goes as one
    delivery with those participants as its recipients, wrapped and serialized once, and the gateway puts
    it into words once. (Per participant, with 200 joining one room in bench/join_cpu.py, this function
    was 5.5 % of the room manager's CPU samples and the gateway's `Deliver` 8.6 % of its own.)"""
    items: list[Outbound] = []
    request = delivery_pb2.DeliverRequest()
    size = 0
    # The request's last delivery and the push it carries, which the next item joins if it is the same.
    delivery: delivery_pb2.Delivery | None = None
    delivered: Push | None = None
    wrapped: delivery_pb2.Push | None = None
    for item in batch:
        cost = len(item.session_id.encode()) + len(item.connection_id.encode()) + _RECIPIENT_OVERHEAD
        joining = delivery is not None and item.push is delivered
        if not joining:
            wrapped = push_message(item.push)
            cost += wrapped.ByteSize() + _DELIVERY_OVERHEAD
        if items and size + cost > bytes_limit:
            yield items, request
            items, request, size = [], delivery_pb2.DeliverRequest(), 0
            if joining:
                assert wrapped is not None
                joining = False
                cost += wrapped.ByteSize() + _DELIVERY_OVERHEAD
        if not joining:
            delivery = request.deliveries.add(push=wrapped)
            delivered = item.push
        assert delivery is not None
        delivery.recipients.add(session_id=item.session_id, connection_id=item.connection_id)
        items.append(item)
        size += cost
    if items:
        yield items, request
