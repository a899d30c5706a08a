"""A room's record and a call's survive the JSON form a shared store keeps them in, every field of them."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest
from parley.relay.v1 import media_pb2
from parley.rooms.v1 import delivery_pb2, rooms_pb2

from services.rooms import room_codec
from services.rooms.calls import Call, CallMedia, CallOrder, Side
from services.rooms.negotiations import Negotiation, Negotiations
from services.rooms.p2p import Engine
from services.rooms.sessions import Attachment, ClientSession
from services.rooms.state import Feed, Participant, RoomState, Subscription

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AUDIO = media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus")
VIDEO = media_pb2.Track(kind=media_pb2.MEDIA_KIND_VIDEO, codec="video/VP8")


def a_full_room() -> RoomState:
    """A record with every field away from its default."""
    subscription = Subscription("sub1", "bob", "s_bob", (VIDEO,), AT, muted={"video"})
    feed = Feed(
        "f1",
        "alice",
        "s_alice",
        "cam",
        2,
        (AUDIO, VIDEO),
        AT,
        subscriptions={"bob": subscription},
        muted={"audio"},
    )
    return RoomState(
        room_id="r1",
        rtoken="t1",
        biz_name="biz",
        creator_uid="alice",
        created_at=AT,
        record=rooms_pb2.RecordOptions(default_record=True, record_param_json='{"a": 1}'),
        relay_address="127.0.0.1:9",
        empty_since=12.5,
        held_by_call=True,
        participants={"alice": Participant("alice", "s_alice", AT), "bob": Participant("bob", "s_bob", AT)},
        feeds={"f1": feed},
        negotiations=Negotiations(
            publishing={"f2": Negotiation("s_bob", "bob", "f2", 40.0, "mic", 1, "127.0.0.1:9")},
            subscribing={
                ("s_alice", "f3"): Negotiation("s_alice", "alice", "f3", 41.0, closed_early={"sub9", "sub8"})
            },
        ),
        invitations={"carol": {"alice": "extra"}},
        engine=Engine.P2P,
    )


def a_full_call() -> Call:
    """A call with every field away from its default."""
    return Call(
        call_id="c1",
        biz_name="biz",
        sn="sn1",
        open_id="alice",
        caller=Side.USER,
        caller_session_id="s_alice",
        order=CallOrder(
            open_id="bob",
            media=CallMedia.VIDEO,
            video=rooms_pb2.VideoFormat(width=640, height=480),
            caller_camera_on=True,
            callee_camera_on=True,
            time_limit_s=30,
            sn="sn1",
        ),
        rang_at=1_700_000_000.5,
        callee_session_id="s_sn1",
        answered_at=1_700_000_003.25,
        room_id="r1",
    )


def test_a_record_comes_back_equal() -> None:
    state = a_full_room()
    assert room_codec.decode(room_codec.encode(state)) == state


def test_every_field_is_away_from_its_default_in_the_full_room() -> None:
    """So that the round trip above covers every field: a field added to a record and forgotten by the
    codec comes back as its default and fails it."""
    state = a_full_room()
    records = [
        state,
        state.negotiations,
        state.participants["alice"],
        state.feeds["f1"],
        state.feeds["f1"].subscriptions["bob"],
        state.negotiations.publishing["f2"],
        state.negotiations.subscribing[("s_alice", "f3")],
        a_full_call(),
        a_full_call().order,
    ]
    set_somewhere = {
        f"{type(record).__name__}.{f.name}"
        for record in records
        for f in fields(record)
        if getattr(record, f.name) not in (None, "", 0, 0.0, False, {}, set(), ())
    }
    assert room_codec.record_fields() == set_somewhere


def test_a_call_comes_back_equal() -> None:
    call = a_full_call()
    assert room_codec.decode_call(room_codec.encode_call(call)) == call


def test_a_call_without_video_comes_back_equal() -> None:
    call = a_full_call()
    call.order = CallOrder("bob", CallMedia.AUDIO, None, False, False, 0)
    assert room_codec.decode_call(room_codec.encode_call(call)) == call


def test_a_session_comes_back_equal_without_what_it_is_owed() -> None:
    """A session's backlog is this process's: the room manager that takes it over has none of it."""
    session = ClientSession(
        "s1",
        "biz",
        "alice",
        Attachment("gw1", "127.0.0.1:7", "c1"),
        attached_at=1_700_000_000.5,
        detached_at=1_700_000_001.5,
        room_id="r1",
        opened_at=AT,
    )
    kept = {f.name for f in fields(ClientSession)} - {"backlog", "overflowed"}
    assert all(getattr(session, name) not in (None, "", 0, 0.0) for name in kept)
    session.backlog.append(delivery_pb2.SessionTakenOver())
    read = room_codec.decode_session(room_codec.encode_session(session))
    assert all(getattr(read, name) == getattr(session, name) for name in kept)
    assert (list(read.backlog), read.overflowed) == ([], False)
    fresh = ClientSession("s2", "biz", "bob", Attachment("gw1", "127.0.0.1:7", "c2"), attached_at=1.0)
    assert room_codec.decode_session(room_codec.encode_session(fresh)) == fresh


def test_a_record_of_another_format_is_refused() -> None:
    data = room_codec.encode(a_full_room()).replace(b'"format":1', b'"format":99')
    with pytest.raises(ValueError, match="format 99"):
        room_codec.decode(data)
