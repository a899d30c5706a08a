"""The WebSocket side of HttpServer: permessage-deflate is negotiated, and only messages of DEFLATE_MIN_BYTES
or more go out compressed (RSV1 set); a client decodes both kinds."""

from __future__ import annotations

import websockets
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode

from services.core.http_server import DEFLATE_MIN_BYTES, HttpServer, LargeMessagesDeflateFactory

SMALL = "s" * 100
LARGE = "l" * (DEFLATE_MIN_BYTES * 4)


async def two_messages(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    for text in (SMALL, LARGE, SMALL):
        await websocket.send_text(text)
    await websocket.close()


async def test_a_client_with_deflate_reads_small_plain_and_large_compressed_messages() -> None:
    server = HttpServer(two_messages, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as client:
            assert [type(e).__name__ for e in client.protocol.extensions] == ["PerMessageDeflate"]
            assert [await client.recv() for _ in range(3)] == [SMALL, LARGE, SMALL]
    finally:
        await server.stop()


def test_only_messages_from_the_threshold_on_are_compressed() -> None:
    _, deflate = LargeMessagesDeflateFactory(server_max_window_bits=12).process_request_params([], [])
    small = deflate.encode(Frame(Opcode.TEXT, b"x" * (DEFLATE_MIN_BYTES - 1)))
    large = deflate.encode(Frame(Opcode.TEXT, b"x" * DEFLATE_MIN_BYTES))
    assert (small.rsv1, len(small.data)) == (False, DEFLATE_MIN_BYTES - 1)
    assert large.rsv1 and len(large.data) < DEFLATE_MIN_BYTES
