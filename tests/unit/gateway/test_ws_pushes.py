"""AuthorisationChanged reaches every session of the device it names, once per event id."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from parley.licence.v1 import events_pb2, licence_pb2

from services.core.events import Envelope, create_broker
from services.gateway.pushes import AuthorisationPushes
from services.gateway.sessions import Device, Session, SessionTable, User


def device_session(table: SessionTable, sn: str) -> Session:
    session = Session(outbound_limit=10)
    session.identity = Device(biz_name="biz1", sn=sn, model_id="m1")
    table.add(session)
    return session


def pushed(session: Session) -> list[dict[str, object]]:
    out = []
    while not session._outbox.empty():
        item = session._outbox.get_nowait()
        assert isinstance(item, str)
        out.append(json.loads(item))
    return out


def envelope(event_id: str) -> Envelope:
    return Envelope(
        id=event_id,
        type="parley.licence.v1.AuthorisationChanged",
        source="//parley/licence",
        time="2026-01-01T00:00:00.000Z",
        topic="parley.licence.v1",
        key="biz1",
    )


def changed(sn: str, open_id: str, status: int) -> events_pb2.AuthorisationChanged:
    return events_pb2.AuthorisationChanged(
        authorisation=licence_pb2.Authorisation(biz_name="biz1", sn=sn, open_id=open_id, status=status)
    )


async def test_every_session_of_the_device_is_told_and_no_one_else() -> None:
    table = SessionTable()
    door_1, door_2 = device_session(table, "p_door"), device_session(table, "p_door")
    window = device_session(table, "p_window")
    user = Session(outbound_limit=10)
    user.identity = User(biz_name="biz1", uid="p_door", app_id="a", workspace_id="w")
    table.add(user)
    pushes = AuthorisationPushes(
        table,
        create_broker("127.0.0.1:9", client_id="t", tracer_provider=TracerProvider()),
        ready_timeout_s=1,
    )

    await pushes.authorisation_changed(changed("p_door", "open_1", 1), envelope("e1"))
    await pushes.authorisation_changed(changed("p_door", "open_1", 0), envelope("e2"))
    # A redelivery of e1 (at-least-once) must not undo the revocation.
    await pushes.authorisation_changed(changed("p_door", "open_1", 1), envelope("e1"))

    expected = [
        {"event": "on_update_authorize_status", "data": {"open_id": "open_1", "status": 1}},
        {"event": "on_update_authorize_status", "data": {"open_id": "open_1", "status": 0}},
    ]
    assert pushed(door_1) == expected
    assert pushed(door_2) == expected
    assert pushed(window) == []
    assert pushed(user) == []
