"""How long from a user's authorisation (HTTP, through the licence service) to the connected device's
`on_update_authorize_status` push (outbox -> Kafka -> gateway -> WebSocket), on a real `parley up`.

    .venv/bin/python bench/authorisation_push.py [--changes 100]

Writes bench/results/authorisation_push.json. Issue #3 asks for under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine
from platform_process import percentiles_ms, running_platform


async def measure(url: str, changes: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        biz = (await http.post("/v1/apps", json={"name": "bench"})).json()["bizName"]
        await http.post(f"/v1/apps/{biz}/licences", json={"modelId": "M1", "type": "video", "count": 1})
        await http.post(f"/v1/apps/{biz}/devices", json={"modelId": "M1", "sn": "P1_bench", "type": "video"})
        ticket = (await http.post(f"/v1/apps/{biz}/devices/P1_bench/tickets")).json()["snTicket"]
        secret = (await http.post("/v1/devices/P1_bench/registration", json={"snTicket": ticket})).json()[
            "deviceSecret"
        ]
        async with websockets.connect(url.replace("http", "ws") + "/ws/v1") as device:
            await device.send(
                json.dumps(
                    {"cmd": "connect", "req_id": "1", "params": {"sn": "P1_bench", "device_secret": secret}}
                )
            )
            assert json.loads(await device.recv())["code"] == 0
            latencies = []
            for change in range(changes):
                started = time.perf_counter()
                await http.put(
                    f"/v1/apps/{biz}/devices/P1_bench/users/owner", json={"authorised": change % 2 == 0}
                )
                while True:
                    message = json.loads(await asyncio.wait_for(device.recv(), 10))
                    if message.get("event") == "on_update_authorize_status":
                        break
                latencies.append(time.perf_counter() - started)
            return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    with running_platform() as url:
        latencies = asyncio.run(measure(url, args.changes))
    result = {
        "benchmark": "authorisation change -> device push",
        "machine": machine(),
        "changes": len(latencies),
        "latency_ms": percentiles_ms(latencies),
        "target_ms": 1000,
    }
    out = Path(__file__).resolve().parent / "results" / "authorisation_push.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PARLEY_LOG_LEVEL", "WARNING")
    main()
