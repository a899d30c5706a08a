"""Domain errors and their one mapping to gRPC status.

A domain error is a constant `ErrorKind`: the numeric code users see (the seed's code where the seed
has one, cited at the definition), a stable reason string, and the gRPC status it travels as. Domain
code raises `ParleyError(kind, message)`; the gRPC server interceptor in `services.core.grpc` turns it
into a status with a `google.rpc.ErrorInfo` detail, and `from_rpc_error` turns it back on the client
side, so the code survives a hop between services unchanged.

The ErrorInfo carries the whole kind (its reason, its code in the metadata, its status as the call's
status), so a client decodes any service's error without importing that service's catalogue: kinds are
equal when their code, reason and status are, whichever process defined them. Each service keeps its own
catalogue (`services/<name>/errors.py`); the kinds more than one service names are in
`services.core.shared_errors`. `tests/unit/test_error_catalogue.py` checks that no reason means two things.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "parley.dev"


@dataclass(frozen=True)
class ErrorKind:
    code: int
    reason: str
    status: grpc.StatusCode
    # Not part of the kind's identity: a kind decoded from the wire knows only the message it came with.
    default_message: str = field(compare=False)

    def __call__(self, message: str | None = None, **metadata: str) -> ParleyError:
        return ParleyError(self, message, **metadata)


class ParleyError(Exception):
    def __init__(self, kind: ErrorKind, message: str | None = None, **metadata: str) -> None:
        self.kind = kind
        self.message = message or kind.default_message
        self.metadata = metadata
        super().__init__(f"{kind.reason} ({kind.code}): {self.message}")

    @property
    def code(self) -> int:
        return self.kind.code

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.kind.reason,
            domain=ERROR_DOMAIN,
            metadata={"code": str(self.kind.code), **self.metadata},
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        return rpc_status.to_status(
            status_pb2.Status(code=self.kind.status.value[0], message=self.message, details=[detail])
        )

    def as_dict(self) -> dict[str, object]:
        """The shape every HTTP and WebSocket error takes: a code and a message."""
        return {"code": self.kind.code, "msg": self.message, "reason": self.kind.reason}


# Parley's own platform errors. Codes below -90000 are Parley's; the seeds' codes are small negative
# numbers (-1 ... -20, -102 ..., -301 ..., -10008) or seven-digit positives (9800001 ...).
INVALID_ARGUMENT = ErrorKind(-90001, "INVALID_ARGUMENT", grpc.StatusCode.INVALID_ARGUMENT, "invalid argument")
NOT_FOUND = ErrorKind(-90004, "NOT_FOUND", grpc.StatusCode.NOT_FOUND, "not found")
ALREADY_EXISTS = ErrorKind(-90006, "ALREADY_EXISTS", grpc.StatusCode.ALREADY_EXISTS, "already exists")
UNAUTHENTICATED = ErrorKind(
    -90016, "UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, "operator credentials required"
)
UNAVAILABLE = ErrorKind(-90014, "UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, "service unavailable")
INTERNAL = ErrorKind(-90013, "INTERNAL", grpc.StatusCode.INTERNAL, "internal error")


class StartupError(Exception):
    """A configuration problem that stops start-up; its message is the one line the operator reads."""


_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def http_status_of(error: ParleyError) -> int:
    return _HTTP_STATUS.get(error.kind.status, 500)


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _status_details(error: grpc.RpcError) -> status_pb2.Status | None:
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


_GRPC_STATUS = {status.value[0]: status for status in grpc.StatusCode}


def _kind_of(info: error_details_pb2.ErrorInfo, status: status_pb2.Status) -> ErrorKind | None:
    """The kind an ErrorInfo of Parley's describes; None for another domain's or one without a code."""
    if info.domain != ERROR_DOMAIN or not info.reason:
        return None
    try:
        code = int(info.metadata["code"])
    except (KeyError, ValueError):
        return None
    grpc_status = _GRPC_STATUS.get(status.code, grpc.StatusCode.UNKNOWN)
    return ErrorKind(code, info.reason, grpc_status, status.message)


def from_rpc_error(error: grpc.RpcError) -> ParleyError:
    """The domain error a failed call carried; `UNAVAILABLE`/`INTERNAL` when it carried none."""
    status = _status_details(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                kind = _kind_of(info, status)
                if kind is not None:
                    metadata = {k: v for k, v in info.metadata.items() if k != "code"}
                    return ParleyError(kind, status.message, **metadata)
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else None
    kind = (
        UNAVAILABLE if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else INTERNAL
    )
    return ParleyError(kind, details or kind.default_message)


def require_fields(**fields: str) -> None:
    """INVALID_ARGUMENT naming every one of `fields` (a request's string fields) that is empty."""
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise INVALID_ARGUMENT(f"required: {', '.join(missing)}")
