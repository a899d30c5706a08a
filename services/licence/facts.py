"""The licence service's facts, staged in its outbox inside the transaction that makes them true.

`Licensing` calls these with the connection of its own transaction; the events reach
`parley.licence.v1` once that transaction commits (see services/core/outbox.py), keyed by the app's
bizName so each app's facts arrive in order. No event carries a private key, a device secret or a
ticket: those never leave this service's database.
"""

from __future__ import annotations

from parley.licence.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.outbox import Outbox
from services.core.topics import Topic
from services.licence import messages
from services.licence.licensing import ActivationRecord, AppRecord, AuthorisationRecord, RegistrationRecord


class OutboxFacts:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def app_created(self, connection: AsyncConnection, app: AppRecord) -> None:
        await self._stage(connection, app.biz_name, events_pb2.AppCreated(app=messages.app_message(app)))

    async def app_changed(
        self, connection: AsyncConnection, app: AppRecord, *, key_rotated: bool = False, deleted: bool = False
    ) -> None:
        event = events_pb2.AppChanged(app=messages.app_message(app), key_rotated=key_rotated, deleted=deleted)
        await self._stage(connection, app.biz_name, event)

    async def device_activated(self, connection: AsyncConnection, activation: ActivationRecord) -> None:
        event = events_pb2.DeviceActivated(activation=messages.activation_message(activation))
        await self._stage(connection, activation.biz_name, event)

    async def device_registered(self, connection: AsyncConnection, registration: RegistrationRecord) -> None:
        event = events_pb2.DeviceRegistered(
            biz_name=registration.biz_name,
            sn=registration.sn,
            registered_at=messages.timestamp(registration.registered_at),
            replaced=registration.replaced,
        )
        await self._stage(connection, registration.biz_name, event)

    async def authorisation_changed(
        self, connection: AsyncConnection, authorisation: AuthorisationRecord
    ) -> None:
        event = events_pb2.AuthorisationChanged(authorisation=messages.authorisation_message(authorisation))
        await self._stage(connection, authorisation.biz_name, event)

    def committed(self) -> None:
        self._outbox.notify()

    async def _stage(
        self,
        connection: AsyncConnection,
        biz_name: str,
        event: events_pb2.AppCreated
        | events_pb2.AppChanged
        | events_pb2.DeviceActivated
        | events_pb2.DeviceRegistered
        | events_pb2.AuthorisationChanged,
    ) -> None:
        await self._outbox.stage(connection, Topic.LICENCE, event, key=biz_name)
