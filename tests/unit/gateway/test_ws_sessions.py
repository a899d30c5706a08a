"""Sessions: one ordered, bounded outbound queue each; the table finds them by id, user and device."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.gateway.protocol import CloseCode
from services.gateway.sessions import Device, Session, SessionTable, User


class Socket:
    """What the writer task writes to: records text frames and the close."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_messages_are_written_in_order_and_the_close_comes_last() -> None:
    session = Session(outbound_limit=10)
    socket = Socket()
    session.send({"n": 1})
    session.send({"n": 2})
    session.close(CloseCode.NORMAL, "disconnect")
    session.send({"n": 3})
    await asyncio.wait_for(session.write(socket.send_text, socket.close), 1)
    assert socket.sent == [{"n": 1}, {"n": 2}]
    assert socket.closed == (1000, "disconnect")


async def test_the_first_close_wins() -> None:
    session = Session(outbound_limit=10)
    socket = Socket()
    session.close(CloseCode.MESSAGE_TOO_BIG, "too big")
    session.close(CloseCode.NORMAL, "disconnect")
    await asyncio.wait_for(session.write(socket.send_text, socket.close), 1)
    assert socket.closed == (1009, "too big")


async def test_a_client_that_lets_the_queue_fill_is_closed_without_the_backlog() -> None:
    session = Session(outbound_limit=3)
    socket = Socket()
    for n in range(4):
        session.send({"n": n})
    assert session.closing
    await asyncio.wait_for(session.write(socket.send_text, socket.close), 1)
    assert socket.sent == []
    assert socket.closed is not None and socket.closed[0] == 1013


async def test_a_session_closes_with_4001_when_its_signature_expires() -> None:
    session = Session(outbound_limit=3)
    socket = Socket()
    session.expire_in(0.05)
    await asyncio.wait_for(session.write(socket.send_text, socket.close), 1)
    assert socket.closed == (4001, "signature expired")


async def test_a_released_session_does_not_expire() -> None:
    session = Session(outbound_limit=3)
    session.expire_in(0.01)
    session.release()
    await asyncio.sleep(0.05)
    assert not session.closing


def connected(identity: User | Device) -> Session:
    session = Session(outbound_limit=1)
    session.identity = identity
    return session


def test_the_table_finds_sessions_by_id_user_and_device() -> None:
    table = SessionTable()
    alice_1 = connected(User(biz_name="b1", uid="alice", app_id="a", workspace_id="w"))
    alice_2 = connected(User(biz_name="b1", uid="alice", app_id="a", workspace_id="w"))
    other_alice = connected(User(biz_name="b2", uid="alice", app_id="a2", workspace_id="w"))
    door = connected(Device(biz_name="b1", sn="p_door", model_id="m"))
    for session in (alice_1, alice_2, other_alice, door):
        table.add(session)

    assert len(table) == 4
    assert table.get(door.id) is door
    assert table.of_user("b1", "alice") == [alice_1, alice_2]
    assert table.of_user("b2", "alice") == [other_alice]
    assert table.of_device("p_door") == [door]
    assert table.of_user("b1", "bob") == [] and table.of_device("p_none") == []


def test_removing_is_idempotent_and_leaves_no_empty_entries() -> None:
    table = SessionTable()
    alice = connected(User(biz_name="b1", uid="alice", app_id="a", workspace_id="w"))
    door = connected(Device(biz_name="b1", sn="p_door", model_id="m"))
    table.add(alice)
    table.add(door)
    for _ in range(2):
        table.remove(alice)
        table.remove(door)
    assert len(table) == 0
    assert table.get(alice.id) is None
    assert table.of_user("b1", "alice") == [] and table.of_device("p_door") == []
    assert table._by_user == {} and table._by_device == {}


def test_a_session_that_never_connected_cannot_join_the_table() -> None:
    with pytest.raises(ValueError):
        SessionTable().add(Session(outbound_limit=1))
    SessionTable().remove(Session(outbound_limit=1))
