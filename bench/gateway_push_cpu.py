"""CPU of a push to a whole room at the gateway, from the room manager's request to the bytes on each
client's socket (issue #16): the room manager's delivery requests for one push to `size` sessions
(`services/rooms/delivery.py`, the form that tree sends), serialized and parsed as gRPC would, handed to the
gateway's `SessionDeliveryServicer.Deliver`, and written by the gateway's WebSocket endpoint on uvicorn
(`services/core/http_server.py`) to `size` real WebSocket connections on loopback. The clients run in a
child process, so the figure is the gateway's side only (on uvloop, as the services run): this process's
CPU time (every thread) from the first push until the clients have read every one, per push and recipient.
No gRPC server, no room manager.

    .venv/bin/python bench/gateway_push_cpu.py [--size 200] [--pushes 200] [--per-call 1] [--tree DIR]

`--per-call K` puts K pushes (each to everyone) in one delivery call, as when K joins were made while the
room manager's last call to the gateway was out.

`--tree DIR` imports the services from another checkout (a `git archive` of main), for an A/B in one sitting.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import uvloop
from source_tree import arguments, use_tree

CLIENT = """
import asyncio, sys, websockets
async def main(url, size, expected):
    sockets = [await websockets.connect(url, max_queue=None) for _ in range(size)]
    for socket in sockets:
        await socket.send('{"cmd":"connect","req_id":"1","params":{}}')
        await socket.recv()
    print("connected", flush=True)
    async def read(socket):
        for _ in range(expected):
            await socket.recv()
    await asyncio.gather(*(read(socket) for socket in sockets))
    print("read", flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def run(size: int, pushes: int, per_call: int) -> dict[str, Any]:
    from parley.rooms.v1 import delivery_pb2

    from services.core.http_server import HttpServer
    from services.gateway.protocol import ok
    from services.gateway.room_pushes import SessionDeliveryServicer
    from services.gateway.sessions import SessionTable, User
    from services.gateway.websocket import ConnectionLimits, WebSocketEndpoint, websocket_first
    from services.rooms import delivery
    from services.rooms.sessions import Outbound

    table = SessionTable()

    class Connect:
        """The gateway's `connect`, without a licence service: the session joins the table."""

        async def handle(self, session: Any, text: str) -> None:
            session.identity = User(biz_name="biz", uid=session.id, app_id="a", workspace_id="w")
            table.add(session)
            session.send(ok("1", {}))

    async def no_http(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("only the WebSocket is used")

    limits = ConnectionLimits(max_frame_bytes=65536, rate_per_s=100, burst=100, outbound_queue=10_000)
    endpoint = WebSocketEndpoint(Connect(), table, limits)  # type: ignore[arg-type]
    server = HttpServer(websocket_first(no_http, "/ws/v1", endpoint), host="127.0.0.1", port=0)
    await server.start()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{server.port}/ws/v1", str(size), str(pushes),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert client.stdout is not None
    assert await client.stdout.readline() == b"connected\n"
    gateway = SessionDeliveryServicer(table)
    sessions = list(table)
    started_cpu, started = time.process_time(), time.monotonic()
    for first in range(0, pushes, per_call):
        batch = []
        for index in range(first, min(first + per_call, pushes)):
            push = delivery_pb2.NewJoinerIn(room_id="0123456789abcdef", uid=f"user_{index}")
            batch.extend(Outbound(session.id, session.connection_id, push) for session in sessions)
        for _, request in delivery._calls_within(batch, delivery.CALL_BYTES_LIMIT):
            wire = delivery_pb2.DeliverRequest.FromString(request.SerializeToString())
            await gateway.Deliver(wire, None)  # type: ignore[arg-type]
        # Let the writers run between calls, as between the room manager's.
        await asyncio.sleep(0)
    assert await client.stdout.readline() == b"read\n"
    cpu_s, wall_s = time.process_time() - started_cpu, time.monotonic() - started
    await client.wait()
    await server.stop()
    return {
        "size": size,
        "pushes": pushes,
        "pushes_per_call": per_call,
        "cpu_us_per_recipient": round(cpu_s * 1e6 / (size * pushes), 2),
        "wall_s": round(wall_s, 2),
    }


def main() -> None:
    parser = arguments()
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--per-call", type=int, default=1)
    args = parser.parse_args()
    tree = use_tree(args.tree)
    # The services' event loop by default (services/core/service.py).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        figures = runner.run(run(args.size, args.pushes, args.per_call))
    figures["tree"] = tree
    figures["load_average"] = os.getloadavg()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
