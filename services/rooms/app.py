"""Wires the room manager together."""

from __future__ import annotations

from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc

from services.core.service import ServiceRuntime
from services.rooms.grpc_api import RoomServicer
from services.rooms.registry import RoomRegistry


def build(runtime: ServiceRuntime) -> None:
    runtime.grpc.add_servicer(
        rooms_pb2_grpc.add_RoomServiceServicer_to_server,
        RoomServicer(RoomRegistry(), runtime.events),
        rooms_pb2.DESCRIPTOR.services_by_name["RoomService"],
    )
