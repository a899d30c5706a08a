"""Closing a parley_sdk Session while the server is still telling it about its streams."""

from __future__ import annotations

import asyncio

from parley_sdk.room import EngineInitParam, EngineListener, Session, SessionListener, _Stream


class PeerThatClosesSlowly:
    """A peer connection whose close yields to the loop, as aiortc's does, and can run a push meanwhile."""

    def __init__(self, during_close: object = None) -> None:
        self.closed = False
        self.during_close = during_close

    async def close(self) -> None:
        await asyncio.sleep(0)
        if callable(self.during_close):
            self.during_close()
        self.closed = True


async def test_a_feed_that_goes_while_the_session_closes_does_not_break_the_close() -> None:
    session = Session(EngineInitParam("ws://127.0.0.1:9/ws/v1"), SessionListener(), EngineListener())
    peers = {feed_id: PeerThatClosesSlowly() for feed_id in ("a", "b", "c")}
    for feed_id, peer in peers.items():
        session._subscriptions[feed_id] = _Stream(peer, feed_id)  # type: ignore[arg-type]
    # Whichever subscription closes first, the server unpublishes the other two meanwhile.
    for feed_id, peer in peers.items():
        others = [other for other in peers if other != feed_id]
        peer.during_close = lambda others=others: [
            session.handle_push("on_unpublish", {"feed": {"feed_id": other}}) for other in others
        ]

    await session.close()

    assert all(peer.closed for peer in peers.values())
    assert session._subscriptions == {}
