"""Errors of billing metering. The seeds define no codes for usage queries or accounts, so these are
Parley's own, -920xx (beside the room manager's -910xx); an app in arrears is the seed's -15 (000 call
codes: "音视频费用包欠费"), which the licence service and the room manager answer, not billing."""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

RANGE_INVALID = ErrorKind(
    -92001, "USAGE_RANGE_INVALID", _Status.INVALID_ARGUMENT, "range must be today, yesterday, 7d or 30d"
)
TIME_ZONE_UNKNOWN = ErrorKind(-92002, "TIME_ZONE_UNKNOWN", _Status.INVALID_ARGUMENT, "unknown time zone")
PLAN_INVALID = ErrorKind(-92003, "PRICE_PLAN_INVALID", _Status.INVALID_ARGUMENT, "invalid price plan")
ACCOUNT_INVALID = ErrorKind(-92004, "ACCOUNT_INVALID", _Status.INVALID_ARGUMENT, "invalid account settings")
TOP_UP_INVALID = ErrorKind(-92005, "TOP_UP_INVALID", _Status.INVALID_ARGUMENT, "invalid top-up")
NOT_PREPAID = ErrorKind(
    -92006, "ACCOUNT_NOT_PREPAID", _Status.FAILED_PRECONDITION, "the account is post-paid"
)
