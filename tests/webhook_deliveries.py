"""A room-status delivery as the webhook intake writes it (its bizRequestId is the fact's id), for the
tests of the dispatcher's queues (tests/unit/webhooks) and of the schedule (tests/integration/webhooks)."""

from __future__ import annotations

from datetime import datetime

from services.webhooks.store import NewDelivery


def joined_delivery(
    event_id: str, room: str, event_time: datetime, *, endpoint_id: str, biz_name: str, kind: str = ""
) -> NewDelivery:
    return NewDelivery(
        endpoint_id=endpoint_id,
        biz_name=biz_name,
        ordering_key=room,
        event_id=event_id,
        event_type="parley.rooms.v1.ParticipantJoined",
        biz_request_id=event_id,
        body="{}",
        event_time=event_time,
        kind=kind,
    )
