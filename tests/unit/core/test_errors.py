import grpc
import pytest

from services.core.errors import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    ErrorKind,
    ParleyError,
    http_status_of,
)


def test_an_error_kind_is_raised_as_a_parley_error_with_its_code() -> None:
    with pytest.raises(ParleyError) as raised:
        raise NOT_FOUND("room r1 does not exist")
    assert raised.value.code == -90004
    assert raised.value.as_dict() == {"code": -90004, "msg": "room r1 does not exist", "reason": "NOT_FOUND"}


def test_a_reason_cannot_be_defined_twice_with_another_meaning() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        ErrorKind(-1, "NOT_FOUND", grpc.StatusCode.INTERNAL, "something else")


def test_grpc_status_maps_to_http_status() -> None:
    assert http_status_of(INVALID_ARGUMENT()) == 400
    assert http_status_of(NOT_FOUND()) == 404
