"""Rooms over protocol v1 with two users on different gateways: create, join, attendance, text, leave,
destruction, and the facts on parley.room.v1; invitations; bad input answered with the seed's codes."""

from __future__ import annotations

from typing import Any


async def test_two_users_on_two_gateways_meet_in_a_room_talk_and_leave(platform: Any, clients: Any) -> None:
    alice = await clients("alice", gateway=0)
    bob = await clients("bob", gateway=1)

    created = await alice.ok(
        "create_room",
        ext={"defaultRecord": True, "recordStrongDepend": False, "recordParam": {"fileType": "MP4"}},
    )
    assert set(created) == {"room_id", "rtoken", "record_id", "record_third_id"}
    # No recorder runs here (tests/integration/recorder has one): the room does not depend on it, so it is
    # created, record_id stays empty and the creator hears that recording failed; the options are kept.
    assert created["record_id"] == ""
    assert (await alice.event("on_remote_recording_failed"))["code"] == -10311
    room_id, rtoken = created["room_id"], created["rtoken"]

    assert await bob.ok("join_room", room_id=room_id, rtoken=rtoken) == {"room_id": room_id, "engine": 0}
    assert await bob.event("on_room_attendance_list") == {
        "room_id": room_id,
        "participants": [{"uid": "alice", "user_type": 0, "publish": []}],
    }
    assert await alice.event("on_new_joiner_in") == {"room_id": room_id, "participant": "bob"}

    sent = await alice.ok("send_text", text="hello 你好")
    assert await bob.event("on_receive_text_msg") == {
        "room_id": room_id,
        "uid": "alice",
        "text": "hello 你好",
        "msg_id": sent["msg_id"],
    }
    await bob.ok("send_text", peers=["alice"], text="hi")
    assert (await alice.event("on_receive_text_msg"))["text"] == "hi"

    assert await bob.ok("leave_room") == {}
    assert await alice.event("on_participant_leave_room") == {
        "room_id": room_id,
        "participant": "bob",
        "exit_type": 1,
    }
    await alice.ok("leave_room")

    destroyed = await platform.facts.wait_for(room_id, "RoomDestroyed")
    assert destroyed.biz_name
    types = platform.facts.types(room_id)
    assert types == [
        "RoomCreated",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantLeft",
        "ParticipantLeft",
        "RoomDestroyed",
    ]
    room_created = platform.facts.events(room_id)[0]
    assert room_created.creator_uid == "alice"
    assert room_created.record.default_record and not room_created.record.record_strong_depend
    assert room_created.record.record_param_json == '{"fileType": "MP4"}'
    # Gone: joining it now is the seed's -403.
    again = await bob.call("join_room", room_id=room_id, rtoken=rtoken)
    assert (again["code"], again["reason"]) == (-403, "ROOM_NOT_FOUND")


async def test_joining_with_a_wrong_token_or_no_room_or_bad_params_is_refused(clients: Any) -> None:
    alice = await clients(gateway=0)
    mallory = await clients(gateway=1)
    room = await alice.ok("create_room")

    cases = [
        ({"room_id": room["room_id"], "rtoken": "guess"}, -403, "RTOKEN_MISMATCH"),
        ({"room_id": "no_such_room", "rtoken": room["rtoken"]}, -403, "ROOM_NOT_FOUND"),
        ({"room_id": room["room_id"]}, -402, "JOIN_INVALID_PARAMS"),
        ({"room_id": 7, "rtoken": room["rtoken"]}, -402, "JOIN_INVALID_PARAMS"),
    ]
    for params, code, reason in cases:
        answer = await mallory.call("join_room", **params)
        assert (answer["code"], answer["reason"]) == (code, reason), (params, answer)
        assert answer["msg"]
    assert (await mallory.call("leave_room"))["code"] == -91010
    assert (await alice.call("create_room"))["code"] == -91011
    assert (await alice.call("create_room", ext={"defaultRecord": "yes"}))["code"] == -91003
    # Room commands need a connected session.
    stranger = await clients(connect_as=False)
    assert (await stranger.call("create_room"))["code"] == -91004
    # Nothing of this reached alice.
    assert await alice.quiet(0.3) == []


async def test_text_to_someone_outside_the_room_is_refused(clients: Any) -> None:
    alice = await clients(gateway=0)
    assert (await alice.call("send_text", text="anyone?"))["reason"] == "TEXT_NOT_IN_ROOM"
    await alice.ok("create_room")
    answer = await alice.call("send_text", peers=["nobody_here"], text="hi")
    assert (answer["code"], answer["reason"]) == (-10291, "PEER_NOT_IN_ROOM")
    assert (await alice.call("send_text", text=""))["code"] == -91003


async def test_an_invitation_reaches_the_invitee_on_another_gateway_and_the_reply_comes_back(
    clients: Any,
) -> None:
    alice = await clients(gateway=0)
    bob = await clients(gateway=1)
    room = await alice.ok("create_room")

    assert await alice.ok("invite", uids=[bob.uid], extra='{"call":"video"}') == {}
    request = await bob.event("on_invite_request")
    assert request == {
        "room_id": room["room_id"],
        "rtoken": room["rtoken"],
        "inviter": alice.uid,
        "extra": '{"call":"video"}',
    }
    await bob.ok("reply_invite", room_id=request["room_id"], reply=0)
    assert await alice.event("on_invite_reply") == {
        "room_id": room["room_id"],
        "invitee": bob.uid,
        "reply": 0,
    }
    await bob.ok("join_room", room_id=request["room_id"], rtoken=request["rtoken"])
    assert (await alice.event("on_new_joiner_in"))["participant"] == bob.uid

    # The invitation was answered: replying again finds none.
    again = await bob.call("reply_invite", room_id=room["room_id"], reply=2)
    assert (again["code"], again["reason"]) == (-601, "INVITATION_NOT_FOUND")


async def test_an_offline_invitee_is_reported_offline_and_a_rejection_reaches_the_inviter(
    clients: Any,
) -> None:
    alice = await clients(gateway=0)
    carol = await clients(gateway=1)
    room = await alice.ok("create_room")

    await alice.ok("invite", uids=["nobody_connected", carol.uid])
    assert await alice.event("on_invite_reply") == {
        "room_id": room["room_id"],
        "invitee": "nobody_connected",
        "reply": 1,
    }
    request = await carol.event("on_invite_request")
    await carol.ok("reply_invite", room_id=request["room_id"], reply=2, inviter=alice.uid)
    assert await alice.event("on_invite_reply") == {
        "room_id": room["room_id"],
        "invitee": carol.uid,
        "reply": 2,
    }


async def test_bad_invitations_get_the_seeds_codes(clients: Any) -> None:
    alice = await clients(gateway=0)
    answer = await alice.call("invite", uids=["bob"])
    assert (answer["code"], answer["reason"]) == (-501, "INVITE_NOT_IN_ROOM")
    await alice.ok("create_room")
    for params in ({}, {"uids": []}, {"uids": ["not valid!"]}, {"uids": "bob"}):
        answer = await alice.call("invite", **params)
        assert (answer["code"], answer["reason"]) == (-503, "INVITE_INVALID_PARAMS"), params
    answer = await alice.call("invite", uids=[alice.uid])
    assert (answer["code"], answer["reason"]) == (-503, "INVITEE_IS_INVITER")
    answer = await alice.call("reply_invite", room_id="r", reply=5)
    assert answer["code"] == -91003


async def test_an_invitee_who_goes_away_is_reported_offline(clients: Any) -> None:
    alice = await clients(gateway=0)
    dave = await clients(gateway=1)
    await alice.ok("create_room")
    await alice.ok("invite", uids=[dave.uid])
    await dave.event("on_invite_request")
    await dave.ok("disconnect")
    assert (await alice.event("on_invite_reply"))["reply"] == 1
