"""Errors of the media relay's API.

Seed 002 (mPaaS MRTC user guide), section 6.3.4, lists the `on_media_close` codes a client sees when a
stream closes; 5003 is "启动流失败" in "信令阶段", a stream that failed to start during signalling, which
is what every refused Publish or Subscribe is. Several reasons share 5003 as they share the seed's code;
the reason says which check failed. Parley's own relay codes are 98050xx, next to the licence's 98001xx
and far from any code the seeds use.

| code    | reason                 | meaning                                                | source    |
| ------- | ---------------------- | ------------------------------------------------------ | --------- |
| 5003    | SDP_MALFORMED          | the offer does not parse, or lacks ICE/DTLS parameters | 002 6.3.4 |
| 5003    | CODEC_UNSUPPORTED      | no Opus/PCMU/PCMA or VP8/H264 in common with the relay | 002 6.3.4 |
| 5003    | MEDIA_MISSING          | nothing to publish or to forward in this offer         | 002 6.3.4 |
| 5003    | FEED_NOT_FOUND         | no such feed in the room on this relay                 | 002 6.3.4 |
| 9805001 | FEED_ALREADY_PUBLISHED | the room already has a feed with this id               | Parley    |
| 9805002 | ALREADY_SUBSCRIBED     | this uid already subscribes to this feed               | Parley    |
| 9805003 | SUBSCRIPTION_NOT_FOUND | no such subscription in the room on this relay         | Parley    |
| 9805004 | TRACK_NOT_FOUND        | the feed or subscription has no track of that kind     | Parley    |

Why a stream closed is not an error but a `CloseCode` (services/relay/close_codes.py).
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

SDP_MALFORMED = ErrorKind(5003, "SDP_MALFORMED", _Status.INVALID_ARGUMENT, "the SDP offer is malformed")
CODEC_UNSUPPORTED = ErrorKind(
    5003, "CODEC_UNSUPPORTED", _Status.INVALID_ARGUMENT, "no codec in common with the relay"
)
MEDIA_MISSING = ErrorKind(5003, "MEDIA_MISSING", _Status.INVALID_ARGUMENT, "the offer has no media to relay")
FEED_NOT_FOUND = ErrorKind(5003, "FEED_NOT_FOUND", _Status.NOT_FOUND, "no such feed on this relay")
FEED_ALREADY_PUBLISHED = ErrorKind(
    9805001, "FEED_ALREADY_PUBLISHED", _Status.ALREADY_EXISTS, "the feed is already published"
)
ALREADY_SUBSCRIBED = ErrorKind(
    9805002, "ALREADY_SUBSCRIBED", _Status.ALREADY_EXISTS, "already subscribed to this feed"
)
SUBSCRIPTION_NOT_FOUND = ErrorKind(
    9805003, "SUBSCRIPTION_NOT_FOUND", _Status.NOT_FOUND, "no such subscription on this relay"
)
TRACK_NOT_FOUND = ErrorKind(
    9805004, "TRACK_NOT_FOUND", _Status.NOT_FOUND, "no track of that kind in this feed or subscription"
)
