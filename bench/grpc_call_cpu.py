"""CPU per unary gRPC call, client and server in this process, through services/core/rpc.py of this tree and
of another (a copy of the code before a change), interleaved: a check of the gRPC plumbing alone that does
not need seven processes on a loaded machine.

    .venv/bin/python bench/grpc_call_cpu.py --before /tmp/copy-of-an-older-tree [--calls 2000] [--rounds 4]

Both servers have the metrics interceptor every service has, and both sides a tracer provider that records
nothing (what services run with when no exporter is set). CPU is `time.process_time` (every thread of this
process, gRPC's own included) over the calls, after 200 calls of warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc  # noqa: E402

from services.core import rpc  # noqa: E402
from services.core.embedded_broker import free_port  # noqa: E402
from services.core.metrics import GrpcMetricsInterceptor, ServiceMetrics  # noqa: E402
from services.core.telemetry import create_tracer_provider  # noqa: E402


class Rooms(rooms_pb2_grpc.RoomServiceServicer):
    async def GetRoom(
        self, request: rooms_pb2.GetRoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.Room:
        return rooms_pb2.Room(room_id=request.room_id)


def load_rpc(tree: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("rpc_of_other_tree", tree / "services/core/rpc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def cpu_per_call_us(module: ModuleType, calls: int, provider: Any, metrics: ServiceMetrics) -> float:
    measured = GrpcMetricsInterceptor(metrics)

    class Metrics(module.UnaryInterceptor):  # type: ignore[name-defined,misc]
        """The metrics interceptor on the other tree's base class (a grpc.aio.ServerInterceptor before)."""

        def wrap(self, method: str, behaviour: Any) -> Any:
            return measured.wrap(method, behaviour)

    server = module.GrpcServer(f"127.0.0.1:{free_port()}", tracer_provider=provider, interceptors=[Metrics()])
    server.add_servicer(
        rooms_pb2_grpc.add_RoomServiceServicer_to_server,
        Rooms(),
        rooms_pb2.DESCRIPTOR.services_by_name["RoomService"],
    )
    await server.start()
    channel = module.open_channel(server.listen_address, tracer_provider=provider)
    stub = rooms_pb2_grpc.RoomServiceStub(channel)
    request = rooms_pb2.GetRoomRequest(room_id="r")
    try:
        for _ in range(200):
            await stub.GetRoom(request)
        started = time.process_time()
        for _ in range(calls):
            await stub.GetRoom(request)
        return (time.process_time() - started) / calls * 1e6
    finally:
        await channel.close()
        await server.stop(0)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="root of the other tree")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    provider = create_tracer_provider("grpc-call-cpu", set_global=False)
    metrics = ServiceMetrics("grpc-call-cpu")
    trees = {"before": load_rpc(args.before), "this tree": rpc}
    results: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, module in trees.items():
            results[name].append(await cpu_per_call_us(module, args.calls, provider, metrics))
    for name, values in results.items():
        print(f"{name}: µs CPU per call {[round(v) for v in values]}, median {statistics.median(values):.0f}")


if __name__ == "__main__":
    asyncio.run(main())
