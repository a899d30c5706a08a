"""Errors of the public WebSocket protocol v1 (docs/protocol.md, "Codes").

The seed's codes come first where seed 002 section 6.3.4 ("建立通话相关错误码") has one that names the
situation; the rest are Parley's own, -910xx: next to the platform's -900xx (`services.core.errors`) and
far from every code the seeds use.

| code   | reason            | when                                                            | source    |
| ------ | ----------------- | --------------------------------------------------------------- | --------- |
| -101   | CONNECT_TIMEOUT   | the licence service did not answer `connect` in time            | 002 6.3.4 |
| -91001 | MALFORMED_MESSAGE | not JSON, not an object, `cmd` / `req_id` / `params` ill-formed | Parley    |
| -91002 | UNKNOWN_COMMAND   | `cmd` names no command of protocol v1                           | Parley    |
| -91003 | INVALID_PARAMS    | a field of `params` is missing, ill-typed or out of range       | Parley    |
| -91004 | NOT_CONNECTED     | a command other than `connect` / `ping` before `connect`        | Parley    |
| -91005 | ALREADY_CONNECTED | a second `connect` on one connection                            | Parley    |
| -91006 | CONNECT_THROTTLED | too many failed connects for this uid or sn lately              | Parley    |

`connect` also answers the licence service's own codes unchanged (-102 for every signature failure,
9800105 for a device that cannot prove its secret, ...): importing `services.licence.errors` registers
those kinds, so `from_rpc_error` recognises them when they come back over gRPC.
"""

from __future__ import annotations

import grpc

import services.licence.errors  # noqa: F401  (registers the licence service's kinds for from_rpc_error)
from services.core.errors import ErrorKind

_Status = grpc.StatusCode

# 002 section 6.3.4: -101 "信令连接初始化超时" (signalling connection initialisation timed out).
CONNECT_TIMEOUT = ErrorKind(
    -101, "CONNECT_TIMEOUT", _Status.DEADLINE_EXCEEDED, "connect timed out; try again"
)
MALFORMED_MESSAGE = ErrorKind(
    -91001,
    "MALFORMED_MESSAGE",
    _Status.INVALID_ARGUMENT,
    'a request is a JSON object {"cmd": str, "req_id": str, "params": object}',
)
UNKNOWN_COMMAND = ErrorKind(-91002, "UNKNOWN_COMMAND", _Status.UNIMPLEMENTED, "unknown command")
INVALID_PARAMS = ErrorKind(-91003, "INVALID_PARAMS", _Status.INVALID_ARGUMENT, "invalid params")
NOT_CONNECTED = ErrorKind(
    -91004,
    "NOT_CONNECTED",
    _Status.FAILED_PRECONDITION,
    "connect first; only connect and ping come before it",
)
ALREADY_CONNECTED = ErrorKind(
    -91005, "ALREADY_CONNECTED", _Status.FAILED_PRECONDITION, "this connection is already connected"
)
CONNECT_THROTTLED = ErrorKind(
    -91006, "CONNECT_THROTTLED", _Status.RESOURCE_EXHAUSTED, "too many failed connects; try again later"
)
