"""Session keeping (seed 002 会话保持): a client whose connection drops resumes its session and room within
the grace, on any gateway, and is sent what it missed; one that does not come back leaves with exitType 2."""

from __future__ import annotations

import asyncio
from typing import Any


def drop(client: Any) -> None:
    """The network goes away: no close frame, the gateway just loses the connection."""
    client.ws.transport.abort()


async def room_joined_by(creator: Any, joiner: Any) -> dict[str, Any]:
    """A room `creator` made and `joiner` joined, once the creator has heard of the joiner."""
    room = await creator.ok("create_room")
    await joiner.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    await creator.event("on_new_joiner_in")
    return room


async def test_a_dropped_client_resumes_on_the_other_gateway_and_gets_what_it_missed(
    platform: Any, app: Any, clients: Any
) -> None:
    alice = await clients(gateway=0)
    bob = await clients(gateway=1)
    room = await room_joined_by(alice, bob)

    drop(bob)
    await asyncio.sleep(0.3)
    await alice.ok("send_text", text="while you were away")

    again = await clients(bob.uid, gateway=0, connect_as=False)
    data = await again.ok("connect", session_id=bob.session_id, **app.connect_params(bob.uid))
    assert data["session_id"] == bob.session_id
    assert (data["resumed"], data["room_id"]) == (True, room["room_id"])
    assert (await again.event("on_receive_text_msg"))["text"] == "while you were away"

    await alice.ok("send_text", text="welcome back")
    assert (await again.event("on_receive_text_msg"))["text"] == "welcome back"
    await again.ok("send_text", text="thanks")
    assert (await alice.event("on_receive_text_msg"))["uid"] == bob.uid
    # Well past the grace, bob never left as far as alice can tell.
    await asyncio.sleep(platform.session_grace_s + 0.5)
    assert [e for e in await alice.quiet(0.3) if e["event"] == "on_participant_leave_room"] == []


async def test_a_client_that_does_not_come_back_leaves_with_exit_type_2(
    platform: Any, app: Any, clients: Any
) -> None:
    alice = await clients(gateway=0)
    carol = await clients(gateway=1)
    room = await room_joined_by(alice, carol)

    drop(carol)
    left = await alice.event("on_participant_leave_room", timeout_s=platform.session_grace_s + 5)
    assert left == {"room_id": room["room_id"], "participant": carol.uid, "exit_type": 2}
    fact = await platform.facts.wait_for(room["room_id"], "ParticipantLeft")
    assert (fact.uid, fact.exit_type) == (carol.uid, 2)

    # Too late to resume: the client gets a new session, in no room.
    late = await clients(carol.uid, gateway=1, connect_as=False)
    data = await late.ok("connect", session_id=carol.session_id, **app.connect_params(carol.uid))
    assert data["resumed"] is False and data["session_id"] != carol.session_id
    assert (await late.call("leave_room"))["code"] == -91010


async def test_a_second_connection_takes_the_session_over_and_the_first_is_closed(
    app: Any, clients: Any
) -> None:
    alice = await clients(gateway=0)
    dave = await clients(gateway=0)
    await room_joined_by(alice, dave)

    # The old connection has not dropped yet (a phone switching networks): the new one takes over.
    for gateway in (1, 0):
        newer = await clients(dave.uid, gateway=gateway, connect_as=False)
        data = await newer.ok("connect", session_id=dave.session_id, **app.connect_params(dave.uid))
        assert (data["resumed"], data["session_id"]) == (True, dave.session_id)
        newer.session_id = data["session_id"]
        assert await dave.close_code() == 4002
        await alice.ok("send_text", text=f"to gateway {gateway}")
        assert (await newer.event("on_receive_text_msg"))["text"] == f"to gateway {gateway}"
        dave = newer
    assert [e for e in await alice.quiet(0.3) if e["event"] == "on_participant_leave_room"] == []


async def test_someone_else_cannot_resume_a_session(app: Any, clients: Any) -> None:
    erin = await clients(gateway=1)
    mallory = await clients(gateway=1, connect_as=False)
    data = await mallory.ok("connect", session_id=erin.session_id, **app.connect_params(mallory.uid))
    assert data["resumed"] is False and data["session_id"] != erin.session_id
    assert (await erin.ok("ping"))["ts"] > 0


async def test_clients_of_a_gateway_that_shuts_down_resume_on_another(
    platform: Any, app: Any, clients: Any, third_gateway: Any
) -> None:
    url, stop_gateway = third_gateway
    alice = await clients(gateway=0)
    bob = await clients(gateway=url)
    room = await room_joined_by(alice, bob)

    await stop_gateway()
    assert await bob.close_code() == 1012
    await alice.ok("send_text", text="are you there?")
    again = await clients(bob.uid, gateway=1, connect_as=False)
    data = await again.ok("connect", session_id=bob.session_id, **app.connect_params(bob.uid))
    assert (data["resumed"], data["room_id"]) == (True, room["room_id"])
    assert (await again.event("on_receive_text_msg"))["text"] == "are you there?"
    await asyncio.sleep(platform.session_grace_s + 0.5)
    assert [e for e in await alice.quiet(0.3) if e["event"] == "on_participant_leave_room"] == []
