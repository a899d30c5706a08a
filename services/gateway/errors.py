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
| -303   | CREATE_ROOM_TIMEOUT | the room manager did not answer `create_room` in time         | 002 6.3.4 |
| -402   | JOIN_INVALID_PARAMS | `join_room` params missing or ill-typed                       | 002 6.3.4 |
| -404   | JOIN_ROOM_TIMEOUT   | the room manager did not answer `join_room` in time           | 002 6.3.4 |
| -503   | INVITE_INVALID_PARAMS | `invite` params missing or ill-typed                        | 002 6.3.4 |
| -91023 | CALL_WRONG_PARTY    | `call` from a user naming an open_id (users call devices)     | Parley    |

Commands also answer the codes of the services behind them unchanged: the licence service's (-102 for
every signature failure, 9800105 for a device that cannot prove its secret, ...), the room manager's
(services/rooms/errors.py) and the relay's (5003 for an offer it cannot answer, ...): `from_rpc_error`
decodes each from the ErrorInfo it carries, so the gateway imports none of their catalogues.
"""

from __future__ import annotations

import grpc

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

# 002 section 6.3.4: -303 "创建房间超时", -402 "加入房间失败: 参数错误", -404 "加入房间超时",
# -503 "邀请对方加入房间失败: 参数错误".
CREATE_ROOM_TIMEOUT = ErrorKind(
    -303, "CREATE_ROOM_TIMEOUT", _Status.DEADLINE_EXCEEDED, "create_room timed out; try again"
)
JOIN_INVALID_PARAMS = ErrorKind(
    -402, "JOIN_INVALID_PARAMS", _Status.INVALID_ARGUMENT, "invalid join_room params"
)
JOIN_ROOM_TIMEOUT = ErrorKind(
    -404, "JOIN_ROOM_TIMEOUT", _Status.DEADLINE_EXCEEDED, "join_room timed out; try again"
)
INVITE_INVALID_PARAMS = ErrorKind(
    -503, "INVITE_INVALID_PARAMS", _Status.INVALID_ARGUMENT, "invalid invite params"
)

# Parley's own (docs/protocol.md, "Calls"): devices call users and users call devices, never a user a
# user; only the gateway knows the session's identity. Seed 000 has no code for it.
CALL_WRONG_PARTY = ErrorKind(
    -91023,
    "CALL_WRONG_PARTY",
    _Status.PERMISSION_DENIED,
    "users call devices (by sn), not other users",
)
