"""Pushes reach the gateway in order and in calls gRPC accepts, however long the pushes are. The gateway
here is a gRPC SessionDelivery server in this process that records what each call carried."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.sdk.trace import TracerProvider
from parley.rooms.v1 import delivery_pb2, delivery_pb2_grpc

from services.core.channels import ChannelPool
from services.rooms.delivery import BATCH_LIMIT, CALL_BYTES_LIMIT, GatewayDelivery
from services.rooms.sessions import Attachment, SessionBook

# gRPC's default limit on a message a server receives.
GRPC_MESSAGE_LIMIT = 4 * 1024 * 1024


class RecordingGateway(delivery_pb2_grpc.SessionDeliveryServicer):
    def __init__(self) -> None:
        self.calls: list[delivery_pb2.DeliverRequest] = []
        self.all_arrived = asyncio.Event()
        self.expected = 0

    async def Deliver(
        self, request: delivery_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> delivery_pb2.DeliverResponse:
        self.calls.append(request)
        if sum(len(call.deliveries) for call in self.calls) >= self.expected:
            self.all_arrived.set()
        return delivery_pb2.DeliverResponse()


async def nothing_changed() -> None:
    """The room manager's dispatch, which these tests do not need."""


async def test_long_pushes_go_in_order_in_calls_under_the_grpc_message_limit() -> None:
    gateway = RecordingGateway()
    server = grpc.aio.server()
    delivery_pb2_grpc.add_SessionDeliveryServicer_to_server(gateway, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channels = ChannelPool(TracerProvider())
    book = SessionBook(grace_s=15, lease_s=15, clock=lambda: 0.0)
    delivery = GatewayDelivery(book, channels, timeout_s=10, changed=nothing_changed)
    try:
        session = book.open("s1", "biz", "alice", Attachment("gw1", f"127.0.0.1:{port}", "c1"))
        # The longest text a client may send (8192 characters), 4 bytes each in UTF-8: twice what one call
        # may carry.
        count = 2 * CALL_BYTES_LIMIT // (4 * 8192) + 1
        assert count <= BATCH_LIMIT
        texts = [f"{n:04d}" + "😀" * 8188 for n in range(count)]
        for n, text in enumerate(texts):
            book.push(
                session, delivery_pb2.TextReceived(room_id="room", uid="bob", text=text, msg_id=f"m{n}")
            )
        gateway.expected = len(texts)
        delivery.wake({"gw1"})
        await asyncio.wait_for(gateway.all_arrived.wait(), timeout=30)
    finally:
        await delivery.stop()
        await channels.close()
        await server.stop(None)

    assert len(gateway.calls) > 1
    assert all(call.ByteSize() <= CALL_BYTES_LIMIT < GRPC_MESSAGE_LIMIT for call in gateway.calls)
    arrived = [item.push.text_received.text for call in gateway.calls for item in call.deliveries]
    assert arrived == texts
