"""The customer's side of bench/webhooks.py, in a process of its own: a uvicorn receiver answering each
callback `{bizRequestId, code: 0}` and writing, to stdout, one line per answer: the bizRequestId and the
wall-clock time (`time.time()`) the answer was sent, so that the bench (another process on the same
machine, the same clock) can take the latency from the broker's acknowledgement of the fact.

    .venv/bin/python bench/webhook_receiver.py PORT

Its own process because the receiver is not Parley: sharing the publisher's event loop, its requests
waited for the publisher's turns and the publisher's for its, and both counted in the latency measured.
Lines are written in groups, at most every 10 ms (a write per answer would cost more than the answer).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import uvicorn

FLUSH_INTERVAL_S = 0.01


class Receiver:
    def __init__(self) -> None:
        self._lines: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        biz_request_id = json.loads(body)["bizRequestId"]
        answer = json.dumps({"bizRequestId": biz_request_id, "code": 0}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        self._lines.append(f"{biz_request_id} {time.time():.6f}\n")

    async def flushing(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            if self._lines:
                lines, self._lines = self._lines, []
                sys.stdout.write("".join(lines))
                sys.stdout.flush()


async def serve(port: int) -> None:
    receiver = Receiver()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    flushing = asyncio.create_task(receiver.flushing())
    try:
        await server.serve()
    finally:
        flushing.cancel()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
