"""Wires the media relay together."""

from __future__ import annotations

from parley.relay.v1 import relay_pb2, relay_pb2_grpc

from services.core.service import ServiceRuntime


def build(runtime: ServiceRuntime) -> None:
    # The API is declared in proto/parley/relay/v1/; its methods arrive with issue #5 and answer
    # UNIMPLEMENTED until then. The process already takes part in health, tracing and start-up.
    runtime.grpc.add_servicer(
        relay_pb2_grpc.add_RelayServiceServicer_to_server,
        relay_pb2_grpc.RelayServiceServicer(),
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"],
    )
