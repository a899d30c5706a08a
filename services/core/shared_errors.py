"""Error kinds that more than one service names: one raises it and another recognises it or raises it too.

A kind used by one service only stays in that service's catalogue (`services/<name>/errors.py`); a kind
moves here when a second service needs it, since a service never imports another's package. The owning
service's catalogue says which of its kinds live here; the codes are the seeds', cited at each kind.
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

# The licence service raises it for a signature; the gateway for a `connect` whose sub_biz / workspace_id
# are not those of the app of biz_name (docs/protocol.md, "connect"). 002 section 6.3.4: -102 "信令连接初始化
# 错误"; section 4: the signed plaintext starts with bizName + appId + workspaceId.
SIGNATURE_WRONG_APP = ErrorKind(
    -102, "SIGNATURE_WRONG_APP", _Status.UNAUTHENTICATED, "the signature was made for another app"
)

# The room manager raises it; the gateway recognises it to re-open a session the room manager lost.
# Parley's own code (docs/protocol.md, "Codes"): seed 002 has none for it.
SESSION_UNKNOWN = ErrorKind(-91016, "SESSION_UNKNOWN", _Status.NOT_FOUND, "the session is not known")

# The recorder raises it; the room manager reports its code when the recorder cannot be reached for a
# room's default recording. 002 StartRemoteRecord: -10311 "服务端返回开启录制失败".
START_FAILED = ErrorKind(-10311, "START_FAILED", _Status.UNAVAILABLE, "the recording could not start")
