"""Server pushes from the licence service's facts to the devices connected to this gateway process.

`AuthorisationChanged` on `parley.licence.v1` becomes `on_update_authorize_status` (seed 000
onUpdateAuthorizeStatus) on every session of the device it names. Every gateway process reads the topic
in a consumer group of its own, starting at the latest offset, and delivers to its own sessions only: each
event reaches every process, so a device is told wherever it is connected, with any number of gateways.

The gateway does not report SERVING before the consumer knows where it reads from: a new group that starts
at "latest" sees only what is published after its position in each partition is set. aiokafka's consumer
start (inside the runtime's broker start) already waits for the group's assignment, which Tansu takes a
few seconds to make; the positions are looked up after that, in the background. `wait_until_positioned`,
a ready hook, waits for them too, so an authorisation made right after start-up is not missed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from aiokafka.errors import IllegalStateError
from faststream.kafka import KafkaBroker
from parley.licence.v1 import events_pb2 as licence_events

from services.core.events import Envelope, EventConsumer, RecentEventIds
from services.core.topics import Topic
from services.gateway.protocol import push
from services.gateway.sessions import SessionTable

log = structlog.get_logger(__name__)

_FETCH_WAIT_MS = 50


class AuthorisationPushes:
    def __init__(
        self,
        sessions: SessionTable,
        broker: KafkaBroker,
        *,
        ready_timeout_s: float,
    ) -> None:
        self.group_id = f"parley-gateway-{uuid.uuid4()}"
        self._sessions = sessions
        self._broker = broker
        self._ready_timeout_s = ready_timeout_s
        # A short fetch wait: Tansu answers a waiting fetch only when the wait ends, and this is a live push.
        consumer = EventConsumer(
            broker, Topic.LICENCE, group_id=self.group_id, start_at="latest", max_wait_ms=_FETCH_WAIT_MS
        )
        consumer.on(licence_events.AuthorisationChanged)(self.authorisation_changed)
        # Delivery is at least once: an event seen lately is not pushed again.
        self._recent = RecentEventIds()

    async def authorisation_changed(
        self, event: licence_events.AuthorisationChanged, envelope: Envelope
    ) -> None:
        if not self._recent.first_delivery(envelope.id):
            return
        authorisation = event.authorisation
        sessions = self._sessions.of_device(authorisation.sn)
        message = push(
            "on_update_authorize_status", {"open_id": authorisation.open_id, "status": authorisation.status}
        )
        for session in sessions:
            session.send(message)
        if sessions:
            log.info(
                "authorisation_pushed",
                sn=authorisation.sn,
                open_id=authorisation.open_id,
                status=authorisation.status,
                sessions=len(sessions),
                ce_id=envelope.id,
            )

    async def wait_until_positioned(self) -> None:
        """Return once the consumer has its partitions and a position in each, or after the ready timeout
        (then pushes may begin late, which is logged, rather than the gateway not starting)."""
        try:
            await asyncio.wait_for(self._positioned(), self._ready_timeout_s)
        except TimeoutError:
            log.warning(
                "push_consumer_not_ready",
                group_id=self.group_id,
                timeout_s=self._ready_timeout_s,
                consequence="authorisation changes until it is ready may not be pushed",
            )
            return
        log.info("push_consumer_ready", group_id=self.group_id)

    async def _positioned(self) -> None:
        subscriber = next(
            sub for sub in self._broker.subscribers if getattr(sub, "group_id", None) == self.group_id
        )
        while True:
            consumer: Any = getattr(subscriber, "consumer", None)
            partitions = consumer.assignment() if consumer is not None else set()
            if partitions:
                try:
                    for partition in partitions:
                        await consumer.position(partition)
                except IllegalStateError:
                    # Reassigned while we asked: wait for the new assignment.
                    continue
                return
            await asyncio.sleep(0.05)
