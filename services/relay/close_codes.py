"""Why a stream closed: the `on_media_close` codes of seed 002, section 6.3.4, that the relay can know."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    # "取消发布/订阅触发关闭流": the stream's own Unpublish or Unsubscribe.
    STOPPED = 5001
    # "流建立连接超时": ICE and DTLS did not connect in time.
    CONNECT_TIMEOUT = 5004
    # "对端取消发布" then "被动关闭流": a subscription whose feed stopped, for whatever reason.
    FEED_STOPPED = 5006
    # "媒体链路连接关闭": the connected media link closed or failed.
    LINK_CLOSED = 5007
    # "媒体服务器通过信令通道发出关闭指令": the relay is shutting down.
    RELAY_SHUTDOWN = 5009
    # "媒体链路连接失败": ICE or DTLS failed before ever connecting.
    LINK_FAILED = 5011
    # The same seed code (an alias, so `CloseCode(5009)` stays RELAY_SHUTDOWN): the relay closed one
    # publication whose inbound packet rate or bitrate stayed over its ceiling (flood_guard.py).
    FLOODED = 5009
