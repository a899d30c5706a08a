"""CPU of the join path's fan-out inside the room manager and the gateway, without sockets (issue #16):
`size` sessions join one room through `RoomManager.join_room`, and everything the joins push (each joiner's
attendance list, `on_new_joiner_in` to everyone already there) goes the way the services send it: the
delivery worker's requests (`services/rooms/delivery.py`), serialized, parsed, and handed to the gateway's
`SessionDeliveryServicer.Deliver`, whose sessions queue the encoded text. Process CPU time, or instructions
under callgrind, of the joins and their pushes; no gRPC, WebSocket or Kafka.

    .venv/bin/python bench/join_fanout_cpu.py [--size 200] [--rounds 5] [--tree DIR]

`--tree DIR` imports the services from another checkout (a `git archive` of main, for an A/B in one
sitting). Under `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured` only the joins
count (`--rounds 1`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from source_tree import arguments, use_tree


def measured(run: Any) -> float:
    """The function callgrind collects in: the joins and their pushes, nothing of the set-up."""
    started = time.process_time()
    run()
    return time.process_time() - started


def one_round(size: int) -> tuple[float, int]:
    from parley.rooms.v1 import delivery_pb2, rooms_pb2

    from services.gateway.room_pushes import SessionDeliveryServicer
    from services.gateway.sessions import Session, SessionTable, User
    from services.rooms import delivery
    from services.rooms.manager import RoomManager, RoomRules
    from services.rooms.sessions import Attachment

    rules = RoomRules(
        session_grace_s=15,
        empty_room_grace_s=600,
        max_participants=size,
        max_feeds_per_participant=4,
        max_subscriptions_per_participant=16,
        negotiation_timeout_s=10,
        gateway_lease_s=15,
    )
    loop = asyncio.new_event_loop()
    manager = RoomManager(rules, relay_address="127.0.0.1:1")
    table = SessionTable()
    gateway = SessionDeliveryServicer(table)
    sessions = []
    for index in range(size):
        session = Session(outbound_limit=10_000)
        session.identity = User(biz_name="biz", uid=f"user_{index}", app_id="a", workspace_id="w")
        table.add(session)
        manager.open_session(
            session.id, "biz", f"user_{index}", Attachment("gw1", "127.0.0.1:2", session.connection_id)
        )
        sessions.append(session)
    room = manager.create_room(
        biz_name="biz", creator_uid="host", session_id="", record=rooms_pb2.RecordOptions()
    )
    manager.outcome()
    pushes = 0

    def joins() -> None:
        nonlocal pushes
        for session in sessions:
            manager.join_room(session.id, room.room_id, room.rtoken)
            manager.outcome()
            while batch := manager.sessions.take("gw1", limit=delivery.BATCH_LIMIT):
                pushes += len(batch)
                for _, request in delivery._calls_within(batch, delivery.CALL_BYTES_LIMIT):
                    wire = delivery_pb2.DeliverRequest.FromString(request.SerializeToString())
                    loop.run_until_complete(gateway.Deliver(wire, None))  # type: ignore[arg-type]

    cpu_s = measured(joins)
    loop.close()
    return cpu_s, pushes


def main() -> None:
    parser = arguments()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tree = use_tree(args.tree)
    rounds = [one_round(args.size) for _ in range(args.rounds)]
    print(
        json.dumps(
            {
                "tree": tree,
                "size": args.size,
                "pushes": rounds[0][1],
                "cpu_ms_per_join": [round(cpu_s * 1000 / args.size, 3) for cpu_s, _ in rounds],
            }
        )
    )


if __name__ == "__main__":
    main()
