"""The WebSocket events of docs/protocol.md that the room manager's pushes become, to the byte: the JSON a
client reads (names, order of keys, types) stays what it was however the gateway builds it."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from parley.recorder.v1 import recorder_pb2
from parley.rooms.v1 import delivery_pb2 as d
from parley.rooms.v1 import rooms_pb2 as r

from services.gateway.protocol import encode
from services.gateway.room_pushes import event_of

# Not ASCII, and a quote: the JSON keeps the characters and escapes the quote.
TEXT = 'hi \u00e9\U0001f600 "q"'
FEED = r.FeedRef(uid="alice", feed_id="f1", tag="cam", media_type=1)
FILE = recorder_pb2.RecordFile(
    file_id="f0123456789abcdef",
    name="a.webm",
    path="rec/a.webm",
    feed_id="f1",
    uid="alice",
    size_bytes=2048,
    duration_ms=1500,
    video_codec="vp8",
    audio_codec="opus",
    media_type=1,
    video_packets=40,
    audio_packets=75,
    first_frame_ms=1767225600040,
    started_at=Timestamp(seconds=1767225600),
    ended_at=Timestamp(seconds=1767225601, nanos=500_000_000),
)


WIRE: list[tuple[d.Push, str | None]] = [
    (
        d.Push(
            attendance_list=d.AttendanceList(
                room_id="r1",
                participants=[
                    r.Participant(
                        uid="alice", feeds=[FEED, r.FeedRef(uid="alice", feed_id="f2", tag="", media_type=2)]
                    ),
                    r.Participant(uid="bob", user_type=0),
                ],
            )
        ),
        '{"event":"on_room_attendance_list","data":{"room_id":"r1","participants":[{"uid":"alice","user_type":0,"publish":[{"feed_id":"f1","tag":"cam","media_type":1},{"feed_id":"f2","tag":"","media_type":2}]},{"uid":"bob","user_type":0,"publish":[]}]}}',
    ),
    (
        d.Push(attendance_list=d.AttendanceList(room_id="r1")),
        '{"event":"on_room_attendance_list","data":{"room_id":"r1","participants":[]}}',
    ),
    (
        d.Push(new_joiner_in=d.NewJoinerIn(room_id="r1", uid="bob")),
        '{"event":"on_new_joiner_in","data":{"room_id":"r1","participant":"bob"}}',
    ),
    (
        d.Push(peer_left=d.PeerLeft(room_id="r1", uid="bob", exit_type=2)),
        '{"event":"on_participant_leave_room","data":{"room_id":"r1","participant":"bob","exit_type":2}}',
    ),
    (
        d.Push(text_received=d.TextReceived(room_id="r1", uid="bob", text=TEXT, msg_id="m1")),
        '{"event":"on_receive_text_msg","data":{"room_id":"r1","uid":"bob",'
        '"text":"hi é😀 \\"q\\"","msg_id":"m1"}}',
    ),
    (
        d.Push(invite_requested=d.InviteRequested(room_id="r1", rtoken="tok", inviter="alice", extra="x")),
        '{"event":"on_invite_request","data":{"room_id":"r1","rtoken":"tok","inviter":"alice","extra":"x"}}',
    ),
    (
        d.Push(invite_replied=d.InviteReplied(room_id="r1", invitee="bob", reply=1)),
        '{"event":"on_invite_reply","data":{"room_id":"r1","invitee":"bob","reply":1}}',
    ),
    (
        d.Push(new_publish=d.NewPublish(room_id="r1", feed=FEED)),
        '{"event":"on_new_publish","data":{"room_id":"r1","feed":{"uid":"alice","feed_id":"f1","tag":"cam","media_type":1}}}',
    ),
    (
        d.Push(unpublished=d.Unpublished(room_id="r1", feed=FEED)),
        '{"event":"on_unpublish","data":{"room_id":"r1","feed":{"uid":"alice","feed_id":"f1","tag":"cam","media_type":1}}}',
    ),
    (
        d.Push(new_subscribe=d.NewSubscribe(room_id="r1", subscriber="bob", feed=FEED)),
        '{"event":"on_new_subscribe","data":{"room_id":"r1","subscriber":"bob","feed":{"uid":"alice","feed_id":"f1","tag":"cam","media_type":1}}}',
    ),
    (
        d.Push(unsubscribed=d.Unsubscribed(room_id="r1", subscriber="bob", feed=FEED)),
        '{"event":"on_unsubscribe","data":{"room_id":"r1","subscriber":"bob","feed":{"uid":"alice","feed_id":"f1","tag":"cam","media_type":1}}}',
    ),
    (
        d.Push(media_closed=d.MediaClosed(room_id="r1", code=5002, feed_id="f1", subscription_id="s1")),
        '{"event":"on_media_close","data":{"room_id":"r1","code":5002,"feed_id":"f1","subscription_id":"s1"}}',
    ),
    (
        d.Push(media_closed=d.MediaClosed(room_id="r1", code=5007, feed_id="f1")),
        '{"event":"on_media_close","data":{"room_id":"r1","code":5007,"feed_id":"f1","subscription_id":""}}',
    ),
    (
        d.Push(left_room=d.LeftRoom(room_id="r1", leave_type=3)),
        '{"event":"on_leave_room","data":{"room_id":"r1","leave_type":3}}',
    ),
    (
        d.Push(
            call_incoming=d.CallIncoming(
                call_id="c1",
                sn="prod1_bell",
                media=2,
                video=r.VideoFormat(width=640, height=480, fps=15),
                caller_camera_on=True,
                time_limit_s=60,
                open_id="alice",
                caller="device",
            )
        ),
        '{"event":"on_call_incoming","data":{"call_id":"c1","sn":"prod1_bell","open_id":"alice","caller":"device","media":"video","video":{"width":640,"height":480,"fps":15},"caller_camera_on":true,"callee_camera_on":false,"time_limit_s":60}}',
    ),
    (
        d.Push(call_incoming=d.CallIncoming(call_id="c2", sn="prod1_bell", media=1)),
        '{"event":"on_call_incoming","data":{"call_id":"c2","sn":"prod1_bell","open_id":"","caller":"","media":"audio","video":null,"caller_camera_on":false,"callee_camera_on":false,"time_limit_s":null}}',
    ),
    (
        d.Push(call_incoming=d.CallIncoming(call_id="c3", sn="prod1_bell", media=7)),
        '{"event":"on_call_incoming","data":{"call_id":"c3","sn":"prod1_bell","open_id":"","caller":"","media":"","video":null,"caller_camera_on":false,"callee_camera_on":false,"time_limit_s":null}}',
    ),
    (
        d.Push(call_accepted=d.CallAccepted(call_id="c1", room_id="r1", rtoken="tok")),
        '{"event":"on_call_answered","data":{"call_id":"c1","room_id":"r1","rtoken":"tok"}}',
    ),
    (
        d.Push(call_command=d.CallCommand(call_id="c1", command="IV_AVT_COMMAND_CALL_HANG_UP")),
        '{"event":"on_call_command","data":{"call_id":"c1","command":"IV_AVT_COMMAND_CALL_HANG_UP"}}',
    ),
    (
        d.Push(call_closed=d.CallClosed(call_id="c1", reason="hang_up", by="user", keep_time_ms=1500)),
        '{"event":"on_call_end","data":{"call_id":"c1","reason":"hang_up","by":"user","keep_time_ms":1500}}',
    ),
    (
        d.Push(call_closed=d.CallClosed(call_id="c1", reason="no_answer")),
        '{"event":"on_call_end","data":{"call_id":"c1","reason":"no_answer","by":"","keep_time_ms":0}}',
    ),
    (
        d.Push(
            p2p_signal_received=d.P2PSignalReceived(
                room_id="r1",
                sender="bob",
                signal=r.P2PSignal(type=r.P2PSignalType.ValueType(3), candidate="candidate:1", sdp_mid="0"),
            )
        ),
        '{"event":"on_p2p_signal","data":{"room_id":"r1","from":"bob","type":"candidate","candidate":"candidate:1","sdp_mid":"0","sdp_mline_index":null}}',
    ),
    (
        d.Push(
            p2p_signal_received=d.P2PSignalReceived(
                room_id="r1",
                sender="bob",
                signal=r.P2PSignal(type=r.P2PSignalType.ValueType(3), candidate="", sdp_mline_index=0),
            )
        ),
        '{"event":"on_p2p_signal","data":{"room_id":"r1","from":"bob","type":"candidate","candidate":"","sdp_mid":null,"sdp_mline_index":0}}',
    ),
    (
        d.Push(
            p2p_signal_received=d.P2PSignalReceived(
                room_id="r1",
                sender="bob",
                signal=r.P2PSignal(type=r.P2PSignalType.ValueType(1), sdp="v=0\r\n"),
            )
        ),
        '{"event":"on_p2p_signal","data":{"room_id":"r1","from":"bob","type":"offer","sdp":"v=0\\r\\n"}}',
    ),
    (
        d.Push(
            p2p_signal_received=d.P2PSignalReceived(
                room_id="r1",
                sender="bob",
                signal=r.P2PSignal(type=r.P2PSignalType.ValueType(2), sdp="v=0\r\n"),
            )
        ),
        '{"event":"on_p2p_signal","data":{"room_id":"r1","from":"bob","type":"answer","sdp":"v=0\\r\\n"}}',
    ),
    (
        d.Push(
            p2p_signal_received=d.P2PSignalReceived(
                room_id="r1", sender="bob", signal=r.P2PSignal(type=r.P2PSignalType.ValueType(4))
            )
        ),
        '{"event":"on_p2p_signal","data":{"room_id":"r1","from":"bob","type":"bye"}}',
    ),
    (
        d.Push(network_weak=d.NetworkWeak(room_id="r1", sid="s1", feed_id="f1", bps_send=120_000)),
        '{"event":"on_network_weak","data":{"room_id":"r1","bpsSend":"120000","bpsRecv":"0","sid":"s1","feed_id":"f1"}}',
    ),
    (
        d.Push(remote_mute=d.RemoteMute(room_id="r1", feed_id="f1", uid="alice", video_muted=True)),
        '{"event":"on_remote_mute","data":{"room_id":"r1","feed_id":"f1","uid":"alice","audio_muted":false,"video_muted":true}}',
    ),
    (
        d.Push(remote_record_over=d.RemoteRecordOver(room_id="r1", record_id="rec1", status=2, files=[FILE])),
        '{"event":"on_remote_record_over","data":{"room_id":"r1","record_id":"rec1","status":2,"files":[{"file_id":"f0123456789abcdef","name":"a.webm","path":"rec/a.webm","feed_id":"f1","uid":"alice","size":2048,"duration_ms":1500,"video_codec":"vp8","audio_codec":"opus","media_type":1,"video_packets":40,"audio_packets":75,"first_frame_ms":1767225600040,"started_at_ms":1767225600000,"ended_at_ms":1767225601500}]}}',
    ),
    (
        d.Push(remote_record_over=d.RemoteRecordOver(room_id="r1", record_id="rec1", status=3)),
        '{"event":"on_remote_record_over","data":{"room_id":"r1","record_id":"rec1","status":3,"files":[]}}',
    ),
    (
        d.Push(
            remote_recording_failed=d.RemoteRecordingFailed(
                room_id="r1", record_id="rec1", feed_id="f1", code=-12481, msg="refused", event_code=100003
            )
        ),
        '{"event":"on_remote_recording_failed","data":{"room_id":"r1","record_id":"rec1","feed_id":"f1","code":-12481,"msg":"refused","event_code":100003}}',
    ),
    # Not events: the gateway closes the connection (4002) on the first; the second is a push of a newer
    # room manager, which it does not know.
    (d.Push(session_taken_over=d.SessionTakenOver()), None),
    (d.Push(), None),
]


@pytest.mark.parametrize(("message", "wire"), WIRE, ids=[m.WhichOneof("push") or "empty" for m, _ in WIRE])
def test_each_push_is_the_documented_event_to_the_byte(message: d.Push, wire: str | None) -> None:
    event = event_of(message)
    assert (encode(event) if event is not None else None) == wire
