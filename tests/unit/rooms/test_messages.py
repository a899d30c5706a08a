"""Every push the room manager makes reaches the gateway as a message and the client as an event, and every
change becomes an event on its topic."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import delivery_pb2

from services.core.topics import Topic
from services.gateway.room_pushes import event_of
from services.rooms import changes, pushes
from services.rooms.messages import change_event, change_key, push_message
from services.rooms.p2p import P2PSignal, P2PSignalType

FEED = pushes.FeedInfo("alice", "f1", "cam", 1)
SAMPLES: list[pushes.Push] = [
    pushes.AttendanceList("r1", (pushes.ParticipantInfo("alice", (FEED,)),)),
    pushes.NewJoinerIn("r1", "bob"),
    pushes.PeerLeft("r1", "bob", pushes.ExitType.ABNORMAL),
    pushes.TextReceived("r1", "bob", "hi", "m1"),
    pushes.InviteRequested("r1", "tok", "alice", "x"),
    pushes.InviteReplied("r1", "bob", pushes.InviteReply.OFFLINE),
    pushes.NewPublish("r1", FEED),
    pushes.Unpublished("r1", FEED),
    pushes.NewSubscribe("r1", "bob", FEED),
    pushes.Unsubscribed("r1", "bob", FEED),
    pushes.MediaClosed("r1", pushes.MediaCloseCode.PEER_LEFT, "f1", "s1"),
    pushes.LeftRoom("r1", pushes.LeaveType.REMOVED),
    pushes.CallIncoming("c1", "prod1_bell", 2, pushes.VideoFormat(640, 480, 15), True, False, 60),
    pushes.CallAccepted("c1", "r1", "tok"),
    pushes.CallCommand("c1", "IV_AVT_COMMAND_CALL_HANG_UP"),
    pushes.CallClosed("c1", "hang_up", "user", 1500),
    pushes.SessionTakenOver(),
    pushes.P2PSignalReceived(
        "r1", "bob", P2PSignal(P2PSignalType.CANDIDATE, candidate="candidate:1", sdp_mid="0")
    ),
    pushes.NetworkWeak("r1", "s1", "f1", 120_000, 0),
    pushes.RemoteMute("r1", "f1", "alice", False, True),
    pushes.RemoteRecordOver("r1", "rec1", 2, (recorder_pb2.RecordFile(name="a.webm", feed_id="f1"),)),
    pushes.RemoteRecordingFailed("r1", "rec1", "f1", 100003, "refused"),
]


def test_every_push_kind_has_a_sample() -> None:
    assert {type(sample) for sample in SAMPLES} == set(typing.get_args(pushes.Push))
    oneof = delivery_pb2.Push.DESCRIPTOR.oneofs_by_name["push"]
    assert len(oneof.fields) == len(SAMPLES)


def test_each_push_becomes_the_seeds_event() -> None:
    events = {}
    for sample in SAMPLES:
        message = push_message(sample)
        event = event_of(message)
        if isinstance(sample, pushes.SessionTakenOver):
            # Not an event: the gateway closes the connection (4002).
            assert event is None and message.WhichOneof("push") == "session_taken_over"
            continue
        assert event is not None, sample
        events[event["event"]] = event["data"]
    assert events["on_room_attendance_list"] == {
        "room_id": "r1",
        "participants": [
            {"uid": "alice", "user_type": 0, "publish": [{"feed_id": "f1", "tag": "cam", "media_type": 1}]}
        ],
    }
    assert events["on_participant_leave_room"] == {"room_id": "r1", "participant": "bob", "exit_type": 2}
    assert events["on_media_close"] == {
        "room_id": "r1",
        "code": 5002,
        "feed_id": "f1",
        "subscription_id": "s1",
    }
    # Seed 002 OnNetworkWeak's names, bits per second as strings.
    assert events["on_network_weak"] == {
        "room_id": "r1",
        "bpsSend": "120000",
        "bpsRecv": "0",
        "sid": "s1",
        "feed_id": "f1",
    }
    assert events["on_remote_mute"] == {
        "room_id": "r1",
        "feed_id": "f1",
        "uid": "alice",
        "audio_muted": False,
        "video_muted": True,
    }
    assert events["on_invite_reply"] == {"room_id": "r1", "invitee": "bob", "reply": 1}
    assert events["on_leave_room"] == {"room_id": "r1", "leave_type": 3}
    assert events["on_remote_recording_failed"] == {
        "room_id": "r1",
        "record_id": "rec1",
        "feed_id": "f1",
        "code": 100003,
        "msg": "refused",
    }
    over = events["on_remote_record_over"]
    assert (over["record_id"], over["status"], [f["name"] for f in over["files"]]) == ("rec1", 2, ["a.webm"])
    assert events["on_call_incoming"] == {
        "call_id": "c1",
        "sn": "prod1_bell",
        "media": "video",
        "video": {"width": 640, "height": 480, "fps": 15},
        "caller_camera_on": True,
        "callee_camera_on": False,
        "time_limit_s": 60,
    }
    assert events["on_call_answered"] == {"call_id": "c1", "room_id": "r1", "rtoken": "tok"}
    assert events["on_call_command"] == {"call_id": "c1", "command": "IV_AVT_COMMAND_CALL_HANG_UP"}
    assert events["on_call_end"] == {"call_id": "c1", "reason": "hang_up", "by": "user", "keep_time_ms": 1500}
    assert events["on_p2p_signal"] == {
        "room_id": "r1",
        "from": "bob",
        "type": "candidate",
        "candidate": "candidate:1",
        "sdp_mid": "0",
        "sdp_mline_index": None,
    }
    assert sorted(events) == [
        "on_call_answered",
        "on_call_command",
        "on_call_end",
        "on_call_incoming",
        "on_invite_reply",
        "on_invite_request",
        "on_leave_room",
        "on_media_close",
        "on_network_weak",
        "on_new_joiner_in",
        "on_new_publish",
        "on_new_subscribe",
        "on_p2p_signal",
        "on_participant_leave_room",
        "on_receive_text_msg",
        "on_remote_mute",
        "on_remote_record_over",
        "on_remote_recording_failed",
        "on_room_attendance_list",
        "on_unpublish",
        "on_unsubscribe",
    ]


def test_each_change_goes_to_its_topic() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    tracks = (changes.Track("video", "video/H264"),)
    samples: list[changes.Change] = [
        changes.RoomCreated("r1", "biz", "alice", at, changes.RecordOptions(default_record=True)),
        changes.RoomDestroyed("r1", "biz", at),
        changes.ParticipantJoined("r1", "biz", "alice", "s1", at),
        changes.ParticipantLeft("r1", "biz", "alice", "s1", pushes.ExitType.NORMAL, at, at),
        changes.FeedPublished("r1", "biz", "f1", "alice", "cam", 3, tracks, at),
        changes.FeedUnpublished("r1", "biz", "f1", "alice", pushes.MediaCloseCode.STOPPED, at, at),
        changes.SubscriptionStarted("r1", "biz", "f1", "s9", "bob", "alice", tracks, at),
        changes.SubscriptionEnded(
            "r1", "biz", "f1", "s9", "bob", "alice", pushes.MediaCloseCode.LEFT_ROOM, at, at
        ),
        changes.CallStarted("c1", "biz", "prod1_bell", "alice", 2, at),
        changes.CallAnswered("c1", "biz", "prod1_bell", "alice", "r2", at),
        changes.CallEnded("c1", "biz", "prod1_bell", "alice", "r2", "time_limit", "", 60_000, at),
    ]
    assert {type(sample) for sample in samples} == set(typing.get_args(changes.Change))
    routed = [(topic, type(event).__name__) for topic, event in map(change_event, samples)]
    assert [topic for topic, _ in routed] == [Topic.ROOM] * 4 + [Topic.FEED] * 4 + [Topic.CALL] * 3
    # Room facts are keyed by room, call facts by call (a ringing call has no room).
    assert {change_key(sample) for sample in samples} == {"r1", "c1"}
    assert [name for _, name in routed] == [type(sample).__name__ for sample in samples]
    _, published = change_event(samples[4])
    assert [(track.kind, track.codec) for track in published.tracks] == [(2, "video/H264")]  # type: ignore[attr-defined]
