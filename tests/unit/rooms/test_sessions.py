"""Where pushes go: the queue of the gateway holding a session's connection, or the session's backlog while
it is detached; what a failed delivery, a heartbeat, a lapsed lease and a resume do to them."""

from __future__ import annotations

from parley.rooms.v1 import delivery_pb2

from services.rooms.pushes import Push
from services.rooms.sessions import BACKLOG_LIMIT, Attachment, HeldConnection, SessionBook
from tests.clock import FakeClock

GRACE_S = 15.0
LEASE_S = 15.0


def book_and_clock() -> tuple[SessionBook, FakeClock]:
    clock = FakeClock(100.0)
    return SessionBook(grace_s=GRACE_S, lease_s=LEASE_S, clock=clock), clock


def on(gateway: str, connection: str) -> Attachment:
    return Attachment(gateway, f"{gateway}:50057", connection)


def note(n: int) -> Push:
    return delivery_pb2.NewJoinerIn(room_id="room", uid=f"u{n}")


def taken(book: SessionBook, gateway: str) -> list[tuple[str, Push]]:
    return [(item.connection_id, item.push) for item in book.take(gateway, limit=1000)]


def test_pushes_queue_per_gateway_in_order_and_come_in_batches() -> None:
    book, _ = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    bob = book.open("s2", "biz", "bob", on("gw2", "c2"))
    for n in range(3):
        book.push(alice, note(n))
        book.push(bob, note(n))
    assert book.ready_gateways() == {"gw1", "gw2"} and book.ready_gateways() == set()
    assert [item.push for item in book.take("gw1", limit=2)] == [note(0), note(1)]
    assert taken(book, "gw1") == [("c1", note(2))]
    assert len(taken(book, "gw2")) == 3


def test_pushes_a_gateway_no_longer_delivers_wait_for_the_resume_in_order() -> None:
    book, _ = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    book.push(alice, note(1))
    in_flight = book.take("gw1", limit=10)
    book.push(alice, note(2))
    # The gateway answers that it no longer holds c1: the session is detached, and owed 1 then 2.
    book.delivered("gw1", in_flight, ["c1"])
    assert not alice.attached
    book.push(alice, note(3))
    assert taken(book, "gw1") == []

    book.resume("s1", "biz", "alice", on("gw2", "c9"))
    assert taken(book, "gw2") == [("c9", note(1)), ("c9", note(2)), ("c9", note(3))]


def test_an_unreachable_gateway_loses_all_its_connections() -> None:
    book, _ = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    bob = book.open("s2", "biz", "bob", on("gw1", "c2"))
    carol = book.open("s3", "biz", "carol", on("gw2", "c3"))
    book.push(alice, note(1))
    book.unreachable("gw1", book.take("gw1", limit=10))
    assert (alice.attached, bob.attached, carol.attached) == (False, False, True)
    assert list(alice.backlog) == [note(1)]


def test_a_resume_while_the_old_connection_stands_takes_it_over() -> None:
    book, _ = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    book.push(alice, note(1))
    book.resume("s1", "biz", "alice", on("gw2", "c2"))
    assert taken(book, "gw1") == [("c1", delivery_pb2.SessionTakenOver())]
    assert taken(book, "gw2") == [("c2", note(1))]
    # The old connection ending late changes nothing.
    assert book.detach("s1", "c1") is False and alice.attached


def test_heartbeats_reattach_live_connections_and_detach_missing_ones() -> None:
    book, clock = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    bob = book.open("s2", "biz", "bob", on("gw1", "c2"))
    book.unreachable("gw1", [])
    book.push(alice, note(1))
    clock.now += LEASE_S / 3
    carol = book.open("s3", "biz", "carol", on("gw1", "c3"))

    # The gateway was only slow: alice's connection is alive, bob's is gone; carol is newer than the list.
    book.heartbeat("gw1", "gw1:50057", [HeldConnection("s1", "c1", "biz", "alice")])
    assert alice.attached and not bob.attached and carol.attached
    assert taken(book, "gw1") == [("c1", note(1))]

    # After a restart of the room manager, the gateways' heartbeats tell it who is online again.
    book.heartbeat("gw1", "gw1:50057", [HeldConnection("s9", "c9", "biz", "dave")])
    assert [s.session_id for s in book.sessions_of("biz", "dave")] == ["s9"]


def test_a_silent_gateway_loses_its_sessions_and_the_grace_ends_them() -> None:
    book, clock = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    clock.now += LEASE_S - 1
    assert book.lapsed() == [] and alice.attached
    clock.now += 1
    assert book.lapsed() == [] and not alice.attached
    clock.now += GRACE_S
    assert book.lapsed() == [alice]
    assert book.end("s1") is alice and book.sessions_of("biz", "alice") == []


def test_a_session_owed_more_than_its_backlog_holds_ends() -> None:
    book, _ = book_and_clock()
    alice = book.open("s1", "biz", "alice", on("gw1", "c1"))
    book.detach("s1", "c1")
    for n in range(BACKLOG_LIMIT):
        book.push(alice, note(n))
    assert book.lapsed() == []
    book.push(alice, note(BACKLOG_LIMIT))
    assert book.lapsed() == [alice]
