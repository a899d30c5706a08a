"""CPU time of the room manager's rules in process (issue #9: the domain builds the protos itself), with
the conversions the service makes after them: each push into its `delivery.proto` message, each fact into
its event. No transport, no broker: what one room operation costs the room manager's process.

    .venv/bin/python bench/room_manager_ops.py [--rooms 50] [--rounds 5] [--label after] \
        [--out bench/results/room_manager_ops.json]

A round: 8 users per room connect, one creates the room, the others join; each publishes a feed and
subscribes to two others; each sends a text; all leave. The result is process time (CPU) per operation,
the median of the rounds. To compare with other code, run it with PYTHONPATH at an export of that code's
`services/` (`git archive <commit> services | tar -x -C /tmp/old`) and another --label.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine

from services.rooms.manager import RoomManager, RoomRules
from services.rooms.sessions import Attachment

ROOM_SIZE = 8
RULES = RoomRules(
    session_grace_s=15,
    empty_room_grace_s=60,
    max_participants=ROOM_SIZE,
    max_feeds_per_participant=2,
    max_subscriptions_per_participant=ROOM_SIZE,
    negotiation_timeout_s=30,
    gateway_lease_s=10_000,
)


def _codec() -> tuple[Any, Any, Any]:
    """Record options, tracks, and what the service does with an outcome, for the code under test."""
    try:
        from parley.relay.v1 import media_pb2
        from parley.rooms.v1 import rooms_pb2

        from services.rooms.changes import change_topic
        from services.rooms.pushes import push_message

        tracks = (media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus"),)
        return rooms_pb2.RecordOptions(), tracks, (push_message, change_topic)
    except ImportError:
        # Before issue #9: records, mapped to protos by services/rooms/messages.py.
        from services.rooms.changes import RecordOptions, Track  # type: ignore[attr-defined]
        from services.rooms.messages import change_event, push_message  # type: ignore[attr-defined]

        return RecordOptions(), (Track("audio", "audio/opus"),), (push_message, change_event)


def round_of(rooms: int) -> tuple[float, int]:
    record, tracks, (to_push, to_event) = _codec()
    manager = RoomManager(RULES, relay_address="relay:1", now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    operations = 0

    def drain() -> None:
        outcome = manager.outcome()
        for change in outcome.changes:
            to_event(change)
        for gateway in outcome.gateways:
            for item in manager.sessions.take(gateway, limit=1_000_000):
                to_push(item.push)

    started = time.process_time()
    for r in range(rooms):
        sessions = [f"s{r}_{n}" for n in range(ROOM_SIZE)]
        for n, session in enumerate(sessions):
            manager.open_session(session, "biz", f"u{r}_{n}", Attachment("gw1", "gw1:1", f"c_{session}"))
        room = manager.create_room(biz_name="", creator_uid="", session_id=sessions[0], record=record)
        for session in sessions[1:]:
            manager.join_room(session, room.room_id, room.rtoken)
        drain()
        feeds = []
        for session in sessions:
            slot = manager.start_publish(session, 2, "mic")
            manager.complete_publish(session, slot.feed_id, tracks)
            feeds.append(slot.feed_id)
        drain()
        for n, session in enumerate(sessions):
            for feed_id in (feeds[(n + 1) % ROOM_SIZE], feeds[(n + 2) % ROOM_SIZE]):
                manager.start_subscribe(session, feed_id, audio=True, video=False)
                manager.complete_subscribe(session, feed_id, f"sub_{session}_{feed_id}", tracks)
            manager.send_text(session, [], "hello")
        drain()
        for session in sessions:
            manager.leave_room(session)
        drain()
        # open + create/join + publish (2 steps) + subscribe (2 x 2 steps) + text + leave, per session
        operations += ROOM_SIZE * (1 + 1 + 2 + 4 + 1 + 1)
    return time.process_time() - started, operations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--label", default="current")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    per_operation_us = []
    for _ in range(args.rounds):
        cpu_s, operations = round_of(args.rooms)
        per_operation_us.append(cpu_s / operations * 1e6)
    result = {
        "label": args.label,
        "rooms": args.rooms,
        "room_size": ROOM_SIZE,
        "rounds": args.rounds,
        "cpu_us_per_operation_median": round(statistics.median(per_operation_us), 2),
        "cpu_us_per_operation_rounds": [round(value, 2) for value in per_operation_us],
    }
    print(json.dumps(result))
    if args.out is not None:
        existing = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        existing["machine"] = machine()
        existing["runs"] = [run for run in existing["runs"] if run["label"] != args.label] + [result]
        args.out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
