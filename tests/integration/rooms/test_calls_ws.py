"""Device-to-phone calls (seeds 000 and 003) over plain WebSockets: a device calls a user of its app by
open_id, on the other gateway; each refusal code of seed 000 comes from the situation it names; ringing,
answering (both sides get the call's room), rejecting, no answer, busy, hang-up (the device hears
IV_AVT_COMMAND_CALL_HANG_UP first), a lost network (it does not) and the time limit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from parley.billing.v1 import events_pb2 as billing_events
from parley.licence.v1 import licence_pb2

from services.core.config import ServiceName
from services.core.topics import Topic
from tests.integration.licence_helpers import VIDEO, App, create_app, register_device
from tests.integration.rooms.conftest import Platform
from tests.testing import publish_fact

HANG_UP = "IV_AVT_COMMAND_CALL_HANG_UP"


async def authorise(platform: Platform, app: App, sn: str, open_id: str, authorised: bool = True) -> None:
    await platform.licence.SetAuthorisation(
        licence_pb2.SetAuthorisationRequest(
            biz_name=app.biz_name, sn=sn, open_id=open_id, authorised=authorised
        ),
        timeout=10,
    )


async def device(
    platform: Platform,
    app: App,
    clients: Any,
    *,
    gateway: int = 0,
    licence_type: licence_pb2.LicenceType.ValueType = VIDEO,
) -> Any:
    sn, secret = await register_device(platform.licence, app, licence_type=licence_type)
    client = await clients(sn, gateway=gateway, connect_as=False)
    client.session_id = (await client.ok("connect", sn=sn, device_secret=secret))["session_id"]
    return client


async def call_pair(platform: Platform, app: App, clients: Any) -> tuple[Any, Any]:
    """A device on gateway 0 and a user on gateway 1 who authorised it."""
    bell = await device(platform, app, clients)
    phone = await clients(gateway=1)
    await authorise(platform, app, bell.uid, phone.uid)
    return bell, phone


async def answered_call(platform: Platform, app: App, clients: Any) -> tuple[Any, Any, str]:
    """A video call from a device to a user who answered it, both told: the device, the user, the call id."""
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await bell.ok("call", **video_call(phone.uid)))["call_id"]
    await phone.event("on_call_incoming")
    await phone.ok("answer_call", call_id=call_id)
    await bell.event("on_call_answered")
    return bell, phone, call_id


def video_call(open_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "open_id": open_id,
        "media": "video",
        "video": {"width": 640, "height": 480, "fps": 15},
        "caller_camera_on": True,
        "callee_camera_on": False,
        **extra,
    }


async def refusal(client: Any, **params: Any) -> tuple[int, str]:
    answer = await client.call("call", **params)
    return answer["code"], answer.get("reason", "")


async def test_each_refusal_code_of_seed_000_comes_from_its_situation(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone = await call_pair(platform, app, clients)
    # -17: the device calls as another model than its licence's.
    another_model = video_call(phone.uid, model_id="another_model")
    assert await refusal(bell, **another_model) == (-17, "MODEL_ID_MISMATCH")
    # -7: not an open_id at all.
    assert await refusal(bell, **video_call("not an open id!")) == (-7, "OPEN_ID_MALFORMED")
    # -20: well-formed, but no app has such a user.
    assert await refusal(bell, **video_call(f"nobody_{uuid.uuid4().hex[:8]}")) == (-20, "OPEN_ID_UNKNOWN")
    # -19: a user of another app.
    other = await create_app(platform.licence, "call-tests")
    other_sn, _ = await register_device(platform.licence, other)
    stranger = f"stranger_{uuid.uuid4().hex[:8]}"
    await authorise(platform, other, other_sn, stranger)
    assert await refusal(bell, **video_call(stranger)) == (-19, "OPEN_ID_WRONG_APP")
    # -9: a user of the app who never authorised this device (only another one).
    neighbour = await clients(gateway=1)
    second_sn, _ = await register_device(platform.licence, app)
    await authorise(platform, app, second_sn, neighbour.uid)
    assert await refusal(bell, **video_call(neighbour.uid)) == (-9, "OPEN_ID_NOT_BOUND")
    # -8: a user who revoked the device.
    await authorise(platform, app, bell.uid, neighbour.uid)
    await authorise(platform, app, bell.uid, neighbour.uid, authorised=False)
    assert await refusal(bell, **video_call(neighbour.uid)) == (-8, "OPEN_ID_NOT_AUTHORISED")
    # Nobody was rung by any of them.
    assert [e for e in await phone.quiet(0.3) if e["event"] == "on_call_incoming"] == []
    assert [e for e in await neighbour.quiet(0.1) if e["event"] == "on_call_incoming"] == []


async def test_a_device_licensed_for_audio_calls_places_audio_calls_only(
    platform: Platform, app: App, clients: Any
) -> None:
    bell = await device(platform, app, clients, licence_type=licence_pb2.LICENCE_TYPE_AUDIO_CALL)
    phone = await clients(gateway=1)
    await authorise(platform, app, bell.uid, phone.uid)
    assert await refusal(bell, **video_call(phone.uid)) == (-91024, "CALL_MEDIA_NOT_LICENSED")
    assert [e for e in await phone.quiet(0.3) if e["event"] == "on_call_incoming"] == []
    await bell.ok("call", open_id=phone.uid, media="audio")
    incoming = await phone.event("on_call_incoming")
    assert incoming["media"] == "audio"


async def test_a_device_whose_registration_is_gone_gets_minus_2(platform: Platform, clients: Any) -> None:
    own = await create_app(platform.licence, "call-tests")
    bell = await device(platform, own, clients)
    # Deleting the app deletes the device's activation and registration; its connection stays.
    await platform.licence.DeleteApp(licence_pb2.GetAppRequest(biz_name=own.biz_name), timeout=10)
    assert await refusal(bell, **video_call("someone")) == (-2, "DEVICE_ID_INVALID")


async def test_an_app_in_arrears_gets_minus_15(platform: Platform, clients: Any) -> None:
    own = await create_app(platform.licence, "call-tests")
    bell = await device(platform, own, clients)
    await authorise(platform, own, bell.uid, "owner")
    in_arrears = billing_events.AccountStatusChanged(biz_name=own.biz_name, in_arrears=True)
    await publish_fact(
        platform.running.kafka, Topic.BILLING, in_arrears, key=own.biz_name, source=ServiceName.BILLING
    )
    # The licence service applies billing's event from its topic: poll until it has.
    async with asyncio.timeout(30):
        while True:
            code, reason = await refusal(bell, **video_call("owner"))
            # Before the event is applied the owner, who is not connected, is offline.
            if code == -15:
                assert reason == "ACCOUNT_IN_ARREARS"
                break
            assert code == -91021
            await asyncio.sleep(0.2)


async def test_ring_answer_and_hang_up_from_the_phone(platform: Platform, app: App, clients: Any) -> None:
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await bell.ok("call", **video_call(phone.uid, time_limit_s=600)))["call_id"]
    assert await phone.event("on_call_incoming") == {
        "call_id": call_id,
        "sn": bell.uid,
        "open_id": phone.uid,
        "caller": "device",
        "media": "video",
        "video": {"width": 640, "height": 480, "fps": 15},
        "caller_camera_on": True,
        "callee_camera_on": False,
        "time_limit_s": 600,
    }
    assert (await bell.ok("is_busy"))["busy"] == 1

    answered = await phone.ok("answer_call", call_id=call_id)
    to_device = await bell.event("on_call_answered")
    assert to_device == await phone.event("on_call_answered") == answered
    # The call's media goes through an ordinary room.
    await bell.ok("join_room", room_id=answered["room_id"], rtoken=answered["rtoken"])
    await phone.ok("join_room", room_id=answered["room_id"], rtoken=answered["rtoken"])
    await bell.event("on_new_joiner_in")
    await asyncio.sleep(0.2)

    await phone.ok("hang_up", call_id=call_id)
    end = await phone.event("on_call_end")
    assert (end["call_id"], end["reason"], end["by"]) == (call_id, "hang_up", "user")
    assert end["keep_time_ms"] >= 200
    await bell.event("on_call_end")
    # Seed 000: the hang-up command came first (it is still among the pushes not taken).
    assert [e["event"] for e in bell.events if e["event"].startswith("on_call")] == ["on_call_command"]
    # Both sides were taken out of the call's room.
    await platform.facts.wait_for(answered["room_id"], "RoomDestroyed")
    assert (await bell.ok("is_busy"))["busy"] == 0

    ended = await platform.facts.wait_for(call_id, "CallEnded")
    assert (ended.reason, ended.by, ended.room_id) == ("hang_up", "user", answered["room_id"])
    assert ended.keep_time_ms >= 200
    assert platform.facts.types(call_id) == ["CallStarted", "CallAnswered", "CallEnded"]


async def test_the_device_hears_the_hang_up_command_before_the_call_ends(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone, call_id = await answered_call(platform, app, clients)

    await phone.ok("hang_up", call_id=call_id)
    await bell.event("on_call_end")
    commands = [e["data"] for e in bell.events if e["event"].startswith("on_call")]
    assert commands == [{"call_id": call_id, "command": HANG_UP}]


async def test_a_rejected_call_ends_for_both_without_a_room(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await bell.ok("call", open_id=phone.uid, media="audio"))["call_id"]
    incoming = await phone.event("on_call_incoming")
    assert (incoming["media"], incoming["video"], incoming["time_limit_s"]) == ("audio", None, None)
    await phone.ok("reject_call", call_id=call_id)
    for side in (bell, phone):
        end = await side.event("on_call_end")
        assert (end["reason"], end["by"], end["keep_time_ms"]) == ("rejected", "user", 0)
    assert [e for e in await bell.quiet(0.3) if e["event"] == "on_call_command"] == []
    # Too late to answer it.
    assert (await phone.call("answer_call", call_id=call_id))["code"] == -91022


async def test_an_unanswered_call_ends_after_the_ring_timeout(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await bell.ok("call", **video_call(phone.uid)))["call_id"]
    await phone.event("on_call_incoming")
    timeout_s = platform.call_ring_timeout_s + 5
    for side in (bell, phone):
        end = await side.event("on_call_end", timeout_s=timeout_s)
        assert (end["call_id"], end["reason"], end["by"]) == (call_id, "no_answer", "")
    assert (await platform.facts.wait_for(call_id, "CallEnded")).reason == "no_answer"


async def test_busy_device_and_busy_user(platform: Platform, app: App, clients: Any) -> None:
    bell, phone = await call_pair(platform, app, clients)
    other_bell = await device(platform, app, clients, gateway=1)
    await authorise(platform, app, other_bell.uid, phone.uid)
    assert (await other_bell.ok("is_busy"))["busy"] == 0

    call_id = (await bell.ok("call", **video_call(phone.uid)))["call_id"]
    await phone.event("on_call_incoming")
    # The device is in a call (seed 000: check busy before calling) ...
    assert await refusal(bell, **video_call(phone.uid)) == (-91020, "IV_ERR_AVT_REQ_CHN_BUSY")
    # ... and so is the user.
    assert await refusal(other_bell, **video_call(phone.uid)) == (-91020, "IV_ERR_AVT_REQ_CHN_BUSY")
    # The device hangs up itself: the user is told who ended it, and the device's stream stops as for any
    # hang-up, after the command.
    await bell.ok("hang_up", call_id=call_id)
    end = await phone.event("on_call_end")
    assert (end["reason"], end["by"]) == ("hang_up", "device")
    await bell.event("on_call_end")
    assert [e["event"] for e in bell.events if e["event"].startswith("on_call")] == ["on_call_command"]
    assert (await other_bell.ok("call", **video_call(phone.uid)))["call_id"]


async def test_offline_user_and_wrong_parties(platform: Platform, app: App, clients: Any) -> None:
    bell = await device(platform, app, clients)
    await authorise(platform, app, bell.uid, "away_user")
    assert await refusal(bell, **video_call("away_user")) == (-91021, "CALLEE_OFFLINE")
    phone = await clients(gateway=1)
    assert (await phone.call("call", **video_call("away_user")))["code"] == -91023
    # A device answers only calls that ring for it (a user's, below).
    assert (await bell.call("answer_call", call_id="nope"))["code"] == -91022
    assert (await phone.call("hang_up", call_id="nope"))["code"] == -91022


async def test_a_lost_network_ends_the_call_without_the_hang_up_command(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone, call_id = await answered_call(platform, app, clients)

    phone.ws.transport.abort()
    end = await bell.event("on_call_end", timeout_s=platform.session_grace_s + 5)
    assert (end["reason"], end["by"]) == ("network", "user")
    assert [e for e in bell.events if e["event"] == "on_call_command"] == []
    assert (await platform.facts.wait_for(call_id, "CallEnded")).reason == "network"


async def test_the_time_limit_ends_the_call(platform: Platform, app: App, clients: Any) -> None:
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await bell.ok("call", **video_call(phone.uid, time_limit_s=1)))["call_id"]
    await phone.event("on_call_incoming")
    await phone.ok("answer_call", call_id=call_id)
    end = await phone.event("on_call_end", timeout_s=10)
    assert (end["reason"], end["by"]) == ("time_limit", "")
    assert end["keep_time_ms"] >= 1000
    await bell.event("on_call_end")
    assert [e["event"] for e in bell.events if e["event"].startswith("on_call")] == [
        "on_call_answered",
        "on_call_command",
    ]


async def test_a_phone_calls_a_device_and_the_device_answers_and_hangs_up(
    platform: Platform, app: App, clients: Any
) -> None:
    """Seed 003 initByCaller: the user calls the device it authorised; the device rings, answers, and
    both get the call's room; the device's hang-up reaches the phone with keep_time_ms."""
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await phone.ok("call", sn=bell.uid, media="audio", time_limit_s=60))["call_id"]
    incoming = await bell.event("on_call_incoming")
    assert (incoming["call_id"], incoming["caller"], incoming["open_id"], incoming["sn"]) == (
        call_id,
        "user",
        phone.uid,
        bell.uid,
    )
    assert incoming["time_limit_s"] == 60
    assert (await phone.ok("is_busy"))["busy"] == 1
    answered = await bell.ok("answer_call", call_id=call_id)
    assert await phone.event("on_call_answered") == answered == await bell.event("on_call_answered")
    await asyncio.sleep(0.2)
    await bell.ok("hang_up", call_id=call_id)
    assert (await bell.event("on_call_command"))["command"] == HANG_UP
    ended = await phone.event("on_call_end")
    assert (ended["reason"], ended["by"]) == ("hang_up", "device") and ended["keep_time_ms"] >= 200
    assert await bell.event("on_call_end") == ended


async def test_a_device_rejects_a_phone_call_and_the_refusals_of_a_phone_call(
    platform: Platform, app: App, clients: Any
) -> None:
    bell, phone = await call_pair(platform, app, clients)
    call_id = (await phone.ok("call", sn=bell.uid, media="video"))["call_id"]
    await bell.event("on_call_incoming")
    await bell.ok("reject_call", call_id=call_id)
    ended = await phone.event("on_call_end")
    assert (ended["reason"], ended["by"], ended["keep_time_ms"]) == ("rejected", "device", 0)
    # -14: seed 000's code for a phone's call to a device whose credential is not valid.
    assert await refusal(phone, sn="prod1_nosuchdevice", media="video") == (-14, "CALLED_DEVICE_INVALID")
    # -9: a user of the app who authorised another device, never this one; -20 one who authorised none.
    stranger = await clients(gateway=1)
    assert await refusal(stranger, sn=bell.uid, media="video") == (-20, "OPEN_ID_UNKNOWN")
    other_sn, _ = await register_device(platform.licence, app)
    await authorise(platform, app, other_sn, stranger.uid)
    assert await refusal(stranger, sn=bell.uid, media="video") == (-9, "OPEN_ID_NOT_BOUND")
    # Users call devices, not users.
    assert await refusal(phone, open_id=stranger.uid, media="video") == (-91023, "CALL_WRONG_PARTY")
