from dataclasses import dataclass

import grpc
import pytest

from services.core.errors import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    ErrorKind,
    ParleyError,
    from_rpc_error,
    http_status_of,
)


@dataclass(frozen=True)
class BareStatus(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class FailedCall(grpc.RpcError):
    """What a client sees when a server aborts with `status` (the parts from_rpc_error reads)."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return tuple(self._status.trailing_metadata)


def test_an_error_kind_is_raised_as_a_parley_error_with_its_code() -> None:
    with pytest.raises(ParleyError) as raised:
        raise NOT_FOUND("room r1 does not exist")
    assert raised.value.code == -90004
    assert raised.value.as_dict() == {"code": -90004, "msg": "room r1 does not exist", "reason": "NOT_FOUND"}


def test_a_kind_no_module_of_the_client_defines_is_decoded_from_its_error_info() -> None:
    # Defined only here, as another service's catalogue would be: the client imports nothing to know it.
    elsewhere = ErrorKind(-91099, "ONLY_ELSEWHERE", grpc.StatusCode.FAILED_PRECONDITION, "default text")
    decoded = from_rpc_error(FailedCall(elsewhere("the room is closing", room_id="r1").to_status()))
    assert decoded.kind == elsewhere
    assert (decoded.code, decoded.kind.reason, decoded.kind.status) == (
        -91099,
        "ONLY_ELSEWHERE",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert decoded.message == "the room is closing"
    assert decoded.metadata == {"room_id": "r1"}
    assert decoded.as_dict() == {"code": -91099, "msg": "the room is closing", "reason": "ONLY_ELSEWHERE"}


def test_kinds_with_one_reason_and_code_but_another_status_are_not_equal() -> None:
    kind = ErrorKind(-1, "X", grpc.StatusCode.NOT_FOUND, "a")
    assert kind == ErrorKind(-1, "X", grpc.StatusCode.NOT_FOUND, "another default message")
    assert kind != ErrorKind(-1, "X", grpc.StatusCode.INTERNAL, "a")


def test_a_call_without_error_info_is_unavailable_or_internal_by_its_status() -> None:
    for code, expected in (
        (grpc.StatusCode.UNAVAILABLE, -90014),
        (grpc.StatusCode.DEADLINE_EXCEEDED, -90014),
        (grpc.StatusCode.NOT_FOUND, -90013),
    ):
        assert from_rpc_error(FailedCall(BareStatus(code, "gone", ()))).code == expected


def test_grpc_status_maps_to_http_status() -> None:
    assert http_status_of(INVALID_ARGUMENT()) == 400
    assert http_status_of(NOT_FOUND()) == 404
