"""The licence service's facts as the events of `parley.licence.v1`.

The rules stage a fact in the store's unit of work that makes it true; the database-backed store
(sql_store.py) writes its event to the outbox in that transaction, and the event is published once the
transaction commits (see services/core/outbox.py). Events are keyed by the app's bizName so each app's
facts arrive in order. No event carries a private key, a device secret or a ticket: those never leave
this service's database.
"""

from __future__ import annotations

from parley.licence.v1 import events_pb2

from services.licence import messages
from services.licence.records import (
    AppChanged,
    AppCreated,
    AuthorisationChanged,
    DeviceActivated,
    DeviceRegistered,
    Fact,
)

Event = (
    events_pb2.AppCreated
    | events_pb2.AppChanged
    | events_pb2.DeviceActivated
    | events_pb2.DeviceRegistered
    | events_pb2.AuthorisationChanged
)


def licence_event(fact: Fact) -> tuple[str, Event]:
    """The fact's event and its key."""
    match fact:
        case AppCreated(app):
            return app.biz_name, events_pb2.AppCreated(app=messages.app_message(app))
        case AppChanged(app, key_rotated, deleted):
            event = events_pb2.AppChanged(
                app=messages.app_message(app), key_rotated=key_rotated, deleted=deleted
            )
            return app.biz_name, event
        case DeviceActivated(activation):
            return activation.biz_name, events_pb2.DeviceActivated(
                activation=messages.activation_message(activation)
            )
        case DeviceRegistered(registration):
            return registration.biz_name, events_pb2.DeviceRegistered(
                biz_name=registration.biz_name,
                sn=registration.sn,
                registered_at=messages.timestamp(registration.registered_at),
                replaced=registration.replaced,
            )
        case AuthorisationChanged(authorisation):
            return authorisation.biz_name, events_pb2.AuthorisationChanged(
                authorisation=messages.authorisation_message(authorisation)
            )
