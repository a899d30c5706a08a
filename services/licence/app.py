"""Wires the licence service together."""

from __future__ import annotations

from parley.licence.v1 import licence_pb2, licence_pb2_grpc

from services.core.service import ServiceRuntime


def build(runtime: ServiceRuntime) -> None:
    # The API is declared in proto/parley/licence/v1/; its methods arrive with issue #3 and answer
    # UNIMPLEMENTED until then. The process already takes part in health, tracing and start-up.
    runtime.grpc.add_servicer(
        licence_pb2_grpc.add_LicenceServiceServicer_to_server,
        licence_pb2_grpc.LicenceServiceServicer(),
        licence_pb2.DESCRIPTOR.services_by_name["LicenceService"],
    )
