"""Stops feeds and subscriptions at their relay when the room manager ends them (a participant left, a
session's grace ran out, an unpublish or unsubscribe). The gateway negotiates media with the relay; what
ends without a gateway asking is stopped from here.

An order that fails is logged and not retried: the relay closes a stream whose peer is gone on its own
(5007/5011 after its connect timeout), so a missed stop costs relay time, not correctness.
"""

from __future__ import annotations

import asyncio

import grpc
import structlog
from parley.relay.v1 import relay_pb2, relay_pb2_grpc

from services.core.channels import ChannelPool
from services.rooms.outcome import RelayOrder, StopFeed

log = structlog.get_logger(__name__)


class RelayOrders:
    def __init__(self, channels: ChannelPool, *, timeout_s: float) -> None:
        self._channels = channels
        self._timeout_s = timeout_s
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, orders: list[RelayOrder]) -> None:
        for order in orders:
            task = asyncio.create_task(self._send(order))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def stop(self, timeout_s: float) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=timeout_s)

    async def _send(self, order: RelayOrder) -> None:
        stub = relay_pb2_grpc.RelayServiceStub(self._channels.get(order.relay_address))
        try:
            if isinstance(order, StopFeed):
                await stub.Unpublish(
                    relay_pb2.UnpublishRequest(room_id=order.room_id, feed_id=order.feed_id),
                    timeout=self._timeout_s,
                )
            else:
                await stub.Unsubscribe(
                    relay_pb2.UnsubscribeRequest(
                        room_id=order.room_id, subscription_id=order.subscription_id
                    ),
                    timeout=self._timeout_s,
                )
        except grpc.aio.AioRpcError as error:
            log.warning("relay_order_failed", order=repr(order), status=error.code().name)
