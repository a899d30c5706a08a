"""Wires the recorder together."""

from __future__ import annotations

from parley.recorder.v1 import recorder_pb2, recorder_pb2_grpc

from services.core.service import ServiceRuntime


def build(runtime: ServiceRuntime) -> None:
    # The API is declared in proto/parley/recorder/v1/; its methods arrive with a later issue and answer
    # UNIMPLEMENTED until then. The process already takes part in health, tracing and start-up.
    runtime.grpc.add_servicer(
        recorder_pb2_grpc.add_RecorderServiceServicer_to_server,
        recorder_pb2_grpc.RecorderServiceServicer(),  # type: ignore[abstract]  # every method UNIMPLEMENTED, on purpose
        recorder_pb2.DESCRIPTOR.services_by_name["RecorderService"],
    )
