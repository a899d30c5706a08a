"""A room's record (services/rooms/state.py), a device call's (services/rooms/calls.py) and a client
session's (services/rooms/sessions.py: who, on which connection, in which room, not its backlog) as JSON,
the form a shared store keeps them in.

Explicit fields rather than pickle: a record read from a shared store must not be able to run code in the
room manager, and a field added to a record must be added here (tests/unit/rooms/test_room_codec.py
fails on a field the codec forgets). Protobuf parts (tracks, recording options) travel as their
serialized bytes in base64, so their own compatibility rules apply.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from parley.relay.v1 import media_pb2
from parley.rooms.v1 import rooms_pb2

from services.rooms.calls import Call, CallMedia, CallOrder, Side
from services.rooms.negotiations import Negotiation, Negotiations
from services.rooms.p2p import Engine
from services.rooms.placement import RelayLoad, RelayNode
from services.rooms.sessions import Attachment, ClientSession
from services.rooms.state import Feed, Participant, RoomState, Subscription

# Raised when a stored record cannot be read; bump it when a change is not backward compatible.
FORMAT = 1


def encode(state: RoomState) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "room_id": state.room_id,
            "rtoken": state.rtoken,
            "biz_name": state.biz_name,
            "creator_uid": state.creator_uid,
            "created_at": state.created_at.isoformat(),
            "record": _b64(state.record.SerializeToString()),
            "relay_address": state.relay_address,
            "empty_since": state.empty_since,
            "held_by_call": state.held_by_call,
            "participants": [
                [p.uid, p.session_id, p.joined_at.isoformat()] for p in state.participants.values()
            ],
            "feeds": [_feed(feed) for feed in state.feeds.values()],
            "publishing": [_negotiation(n) for n in state.negotiations.publishing.values()],
            "subscribing": [_negotiation(n) for n in state.negotiations.subscribing.values()],
            "invitations": state.invitations,
            "engine": int(state.engine),
        },
        separators=(",", ":"),
    ).encode()


def decode(data: bytes | str) -> RoomState:
    raw = json.loads(data)
    if raw.get("format") != FORMAT:
        raise ValueError(f"room record format {raw.get('format')!r}, this room manager reads {FORMAT}")
    feeds = [_read_feed(item) for item in raw["feeds"]]
    subscribing = [_read_negotiation(item) for item in raw["subscribing"]]
    return RoomState(
        room_id=raw["room_id"],
        rtoken=raw["rtoken"],
        biz_name=raw["biz_name"],
        creator_uid=raw["creator_uid"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        record=rooms_pb2.RecordOptions.FromString(_unb64(raw["record"])),
        relay_address=raw["relay_address"],
        empty_since=raw["empty_since"],
        held_by_call=raw["held_by_call"],
        participants={
            uid: Participant(uid, session_id, datetime.fromisoformat(joined_at))
            for uid, session_id, joined_at in raw["participants"]
        },
        feeds={feed.feed_id: feed for feed in feeds},
        negotiations=Negotiations(
            publishing={n.feed_id: n for n in map(_read_negotiation, raw["publishing"])},
            subscribing={(n.session_id, n.feed_id): n for n in subscribing},
        ),
        invitations=raw["invitations"],
        engine=Engine(raw["engine"]),
    )


def encode_call(call: Call) -> bytes:
    order = call.order
    return json.dumps(
        {
            "format": FORMAT,
            "call_id": call.call_id,
            "biz_name": call.biz_name,
            "sn": call.sn,
            "open_id": call.open_id,
            "caller": call.caller.value,
            "caller_session_id": call.caller_session_id,
            "order": {
                "open_id": order.open_id,
                "media": int(order.media),
                "video": _b64(order.video.SerializeToString()) if order.video is not None else None,
                "caller_camera_on": order.caller_camera_on,
                "callee_camera_on": order.callee_camera_on,
                "time_limit_s": order.time_limit_s,
                "sn": order.sn,
            },
            "rang_at": call.rang_at,
            "callee_session_id": call.callee_session_id,
            "answered_at": call.answered_at,
            "room_id": call.room_id,
        },
        separators=(",", ":"),
    ).encode()


def decode_call(data: bytes | str) -> Call:
    raw = json.loads(data)
    if raw.get("format") != FORMAT:
        raise ValueError(f"call record format {raw.get('format')!r}, this room manager reads {FORMAT}")
    order = raw["order"]
    return Call(
        call_id=raw["call_id"],
        biz_name=raw["biz_name"],
        sn=raw["sn"],
        open_id=raw["open_id"],
        caller=Side(raw["caller"]),
        caller_session_id=raw["caller_session_id"],
        order=CallOrder(
            open_id=order["open_id"],
            media=CallMedia(order["media"]),
            video=rooms_pb2.VideoFormat.FromString(_unb64(order["video"]))
            if order["video"] is not None
            else None,
            caller_camera_on=order["caller_camera_on"],
            callee_camera_on=order["callee_camera_on"],
            time_limit_s=order["time_limit_s"],
            sn=order["sn"],
        ),
        rang_at=raw["rang_at"],
        callee_session_id=raw["callee_session_id"],
        answered_at=raw["answered_at"],
        room_id=raw["room_id"],
    )


def encode_session(session: ClientSession) -> bytes:
    attachment = session.attachment
    return json.dumps(
        {
            "format": FORMAT,
            "session_id": session.session_id,
            "biz_name": session.biz_name,
            "uid": session.uid,
            "attachment": [attachment.gateway_id, attachment.gateway_address, attachment.connection_id],
            "attached_at": session.attached_at,
            "detached_at": session.detached_at,
            "room_id": session.room_id,
            "opened_at": session.opened_at.isoformat() if session.opened_at is not None else None,
        },
        separators=(",", ":"),
    ).encode()


def decode_session(data: bytes | str) -> ClientSession:
    raw = json.loads(data)
    if raw.get("format") != FORMAT:
        raise ValueError(f"session record format {raw.get('format')!r}, this room manager reads {FORMAT}")
    return ClientSession(
        session_id=raw["session_id"],
        biz_name=raw["biz_name"],
        uid=raw["uid"],
        attachment=Attachment(*raw["attachment"]),
        attached_at=raw["attached_at"],
        detached_at=raw["detached_at"],
        room_id=raw["room_id"],
        opened_at=datetime.fromisoformat(raw["opened_at"]) if raw["opened_at"] is not None else None,
    )


def encode_relay(relay: RelayNode) -> bytes:
    """A relay's last report (its rooms placed since are the room manager's own count)."""
    load = relay.load
    return json.dumps(
        [
            relay.relay_id,
            relay.address,
            relay.capacity,
            load.publications,
            load.subscriptions,
            load.draining,
            relay.last_report,
        ],
        separators=(",", ":"),
    ).encode()


def decode_relay(data: bytes | str) -> RelayNode:
    relay_id, address, capacity, publications, subscriptions, draining, last_report = json.loads(data)
    return RelayNode(
        relay_id, address, capacity, RelayLoad(publications, subscriptions, draining), last_report
    )


def record_fields() -> set[str]:
    """The fields of every record the codec writes, to check none is forgotten."""
    return {
        f"{record.__name__}.{f.name}"
        for record in (RoomState, Participant, Feed, Subscription, Negotiation, Negotiations, Call, CallOrder)
        for f in fields(record)
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _tracks(tracks: tuple[media_pb2.Track, ...]) -> list[str]:
    return [_b64(track.SerializeToString()) for track in tracks]


def _read_tracks(items: list[str]) -> tuple[media_pb2.Track, ...]:
    return tuple(media_pb2.Track.FromString(_unb64(item)) for item in items)


def _feed(feed: Feed) -> dict[str, Any]:
    return {
        "feed_id": feed.feed_id,
        "uid": feed.uid,
        "session_id": feed.session_id,
        "tag": feed.tag,
        "media_type": feed.media_type,
        "tracks": _tracks(feed.tracks),
        "published_at": feed.published_at.isoformat(),
        "subscriptions": [
            {
                "subscription_id": s.subscription_id,
                "uid": s.uid,
                "session_id": s.session_id,
                "tracks": _tracks(s.tracks),
                "started_at": s.started_at.isoformat(),
                "muted": sorted(s.muted),
            }
            for s in feed.subscriptions.values()
        ],
        "muted": sorted(feed.muted),
    }


def _read_feed(raw: dict[str, Any]) -> Feed:
    subscriptions = [
        Subscription(
            subscription_id=s["subscription_id"],
            uid=s["uid"],
            session_id=s["session_id"],
            tracks=_read_tracks(s["tracks"]),
            started_at=datetime.fromisoformat(s["started_at"]),
            muted=set(s["muted"]),
        )
        for s in raw["subscriptions"]
    ]
    return Feed(
        feed_id=raw["feed_id"],
        uid=raw["uid"],
        session_id=raw["session_id"],
        tag=raw["tag"],
        media_type=raw["media_type"],
        tracks=_read_tracks(raw["tracks"]),
        published_at=datetime.fromisoformat(raw["published_at"]),
        subscriptions={s.uid: s for s in subscriptions},
        muted=set(raw["muted"]),
    )


def _negotiation(n: Negotiation) -> dict[str, Any]:
    return {
        "session_id": n.session_id,
        "uid": n.uid,
        "feed_id": n.feed_id,
        "deadline": n.deadline,
        "tag": n.tag,
        "media_type": n.media_type,
        "relay_address": n.relay_address,
        "closed_early": sorted(n.closed_early),
    }


def _read_negotiation(raw: dict[str, Any]) -> Negotiation:
    return Negotiation(
        session_id=raw["session_id"],
        uid=raw["uid"],
        feed_id=raw["feed_id"],
        deadline=raw["deadline"],
        tag=raw["tag"],
        media_type=raw["media_type"],
        relay_address=raw["relay_address"],
        closed_early=set(raw["closed_early"]),
    )
