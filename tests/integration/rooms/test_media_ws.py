"""publish / subscribe / unsubscribe / unpublish over protocol v1: the SDP goes to the real relay (in this
process), the bookkeeping, pushes and facts come from the room manager. Media is not checked flowing here:
the relay's own tests do that; these check that the answer is the relay's and the rest is consistent."""

from __future__ import annotations

from typing import Any


async def room_of_two(clients: Any) -> tuple[Any, Any, dict[str, str]]:
    alice = await clients(gateway=0)
    bob = await clients(gateway=1)
    room = await alice.ok("create_room")
    await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    await alice.event("on_new_joiner_in")
    await bob.event("on_room_attendance_list")
    return alice, bob, room


def is_answer_to(answer: str, offer: str) -> bool:
    """The relay's answer: an SDP with the offer's m-lines, with ICE and DTLS of its own."""
    m_lines = [line.split(" ")[0] for line in offer.splitlines() if line.startswith("m=")]
    answered = [line.split(" ")[0] for line in answer.splitlines() if line.startswith("m=")]
    return answer.startswith("v=0") and answered == m_lines and "a=fingerprint:" in answer


async def test_publish_subscribe_unsubscribe_unpublish(platform: Any, clients: Any, peers: Any) -> None:
    alice, bob, room = await room_of_two(clients)
    room_id = room["room_id"]

    offer = await peers(send=True).offer()
    published = await alice.ok("publish", media_type=1, tag="camera", sdp=offer)
    feed_id = published["feed_id"]
    assert is_answer_to(published["sdp"], offer)
    feed = {"uid": alice.uid, "feed_id": feed_id, "tag": "camera", "media_type": 1}
    assert await bob.event("on_new_publish") == {"room_id": room_id, "feed": feed}

    recv_offer = await peers(send=False).offer()
    subscribed = await bob.ok("subscribe", feed_id=feed_id, sdp=recv_offer)
    assert subscribed["feed_id"] == feed_id and subscribed["subscription_id"]
    assert is_answer_to(subscribed["sdp"], recv_offer)
    assert await alice.event("on_new_subscribe") == {"room_id": room_id, "subscriber": bob.uid, "feed": feed}
    again = await bob.call("subscribe", feed_id=feed_id, sdp=recv_offer)
    assert (again["code"], again["reason"]) == (-1081, "SUBSCRIPTION_EXISTS")

    await bob.ok("unsubscribe", feed_id=feed_id)
    assert await alice.event("on_unsubscribe") == {"room_id": room_id, "subscriber": bob.uid, "feed": feed}

    resubscribed = await bob.ok("subscribe", feed_id=feed_id, sdp=await peers(send=False).offer())
    await alice.event("on_new_subscribe")
    await alice.ok("unpublish", feed_id=feed_id)
    assert await bob.event("on_unpublish") == {"room_id": room_id, "feed": feed}
    assert await bob.event("on_media_close") == {
        "room_id": room_id,
        "code": 5006,
        "feed_id": feed_id,
        "subscription_id": resubscribed["subscription_id"],
    }

    ended = await platform.facts.wait_for(room_id, "FeedUnpublished")
    assert (ended.feed_id, ended.code) == (feed_id, 5001)
    feed_facts = [
        (type(event).__name__, getattr(event, "code", 0))
        for event in platform.facts.events(room_id)
        if type(event).__name__.startswith(("Feed", "Subscription"))
    ]
    assert feed_facts == [
        ("FeedPublished", 0),
        ("SubscriptionStarted", 0),
        ("SubscriptionEnded", 5001),
        ("SubscriptionStarted", 0),
        ("SubscriptionEnded", 5006),
        ("FeedUnpublished", 5001),
    ]
    published_fact = await platform.facts.wait_for(room_id, "FeedPublished")
    assert {track.codec.split("/")[0] for track in published_fact.tracks} == {"audio", "video"}


async def test_a_publisher_who_leaves_closes_its_subscribers_streams_with_5002(
    platform: Any, clients: Any, peers: Any
) -> None:
    alice, bob, room = await room_of_two(clients)
    feed_id = (await alice.ok("publish", media_type=2, sdp=await peers(send=True).offer()))["feed_id"]
    await bob.event("on_new_publish")
    subscription = await bob.ok(
        "subscribe", feed_id=feed_id, video=False, sdp=await peers(send=False).offer()
    )

    # A joiner learns what is published.
    carol = await clients(gateway=0)
    await carol.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
    attendance = await carol.event("on_room_attendance_list")
    assert {p["uid"]: p["publish"] for p in attendance["participants"]} == {
        alice.uid: [{"feed_id": feed_id, "tag": "", "media_type": 2}],
        bob.uid: [],
    }

    await alice.ok("leave_room")
    assert (await bob.event("on_participant_leave_room"))["exit_type"] == 1
    assert await bob.event("on_media_close") == {
        "room_id": room["room_id"],
        "code": 5002,
        "feed_id": feed_id,
        "subscription_id": subscription["subscription_id"],
    }
    # The feed is gone with its publisher.
    answer = await carol.call("subscribe", feed_id=feed_id, sdp=await peers(send=False).offer())
    assert (answer["code"], answer["reason"]) == (-1081, "FEED_UNKNOWN")
    ended = await platform.facts.wait_for(room["room_id"], "FeedUnpublished")
    assert ended.code == 5008


async def test_bad_publish_and_subscribe_requests_get_their_codes(clients: Any, peers: Any) -> None:
    alice = await clients(gateway=0)
    offer = await peers(send=True).offer()
    answer = await alice.call("publish", media_type=1, sdp=offer)
    assert (answer["code"], answer["reason"]) == (5104, "PUBLISH_NOT_IN_ROOM")
    answer = await alice.call("subscribe", feed_id="f1", sdp=offer)
    assert (answer["code"], answer["reason"]) == (-1087, "SUBSCRIBE_NOT_IN_ROOM")

    await alice.ok("create_room")
    for params in ({"media_type": 4, "sdp": offer}, {"media_type": "1", "sdp": offer}, {"media_type": 1}):
        assert (await alice.call("publish", **params))["code"] == -91003, params
    # The relay refuses what is not an offer; the reservation is given back (the limit is 4 feeds).
    for _ in range(5):
        answer = await alice.call("publish", media_type=1, sdp="v=0 not an offer")
        assert answer["code"] == 5003, answer
    feeds = [
        (await alice.ok("publish", media_type=1, sdp=await peers(send=True).offer()))["feed_id"]
        for _ in range(4)
    ]
    answer = await alice.call("publish", media_type=1, sdp=await peers(send=True).offer())
    assert (answer["code"], answer["reason"]) == (-1073, "PUBLISH_LIMIT")

    answer = await alice.call("subscribe", feed_id="f_none", sdp=offer)
    assert (answer["code"], answer["reason"]) == (-1081, "FEED_UNKNOWN")
    answer = await alice.call("subscribe", feed_id=feeds[0], audio=False, video=False, sdp=offer)
    assert (answer["code"], answer["reason"]) == (-1086, "SUBSCRIBE_NOTHING")
    assert (await alice.call("unsubscribe", feed_id=feeds[0]))["code"] == -91013
    assert (await alice.call("unpublish", feed_id="f_none"))["code"] == -91012
    await alice.ok("unpublish", feed_id=feeds[0])
    assert (await alice.call("unpublish", feed_id=feeds[0]))["code"] == -91012
