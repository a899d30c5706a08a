"""The gateway's one negotiation sequence, for publish and for subscribe: reserve at the room manager,
negotiate at the relay it names, complete; and the undo of each failure (the reservation cancelled when the
relay refuses, the stream stopped at the relay when the room manager will not complete it). The room
manager and the relay are fakes that record the calls they get."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from parley.relay.v1 import media_pb2, relay_pb2
from parley.rooms.v1 import rooms_pb2

from services.core.errors import ParleyError
from services.gateway.room_commands import RoomCommands
from services.gateway.sessions import Session

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
TRACKS = [media_pb2.Track(kind=media_pb2.MEDIA_KIND_AUDIO, codec="audio/opus")]


def refusal(detail: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, grpc.aio.Metadata(), grpc.aio.Metadata(), detail
    )


class Fake:
    """Answers each named call with a message, or raises what `refuse` names; records the calls."""

    def __init__(self, answers: dict[str, Any], refuse: set[str]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._answers = answers
        self._refuse = refuse

    def __getattr__(self, name: str) -> Any:
        async def call(request: Any, **options: Any) -> Any:
            self.calls.append((name, request))
            if name in self._refuse:
                raise refusal(f"{name} refused")
            return self._answers.get(name)

        return call

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class Relays:
    def __init__(self, relay: Fake) -> None:
        self.relay = relay
        self.addresses: list[str] = []

    def stub(self, address: str) -> Fake:
        self.addresses.append(address)
        return self.relay


SLOT: dict[str, Any] = {
    "room_id": "r1",
    "biz_name": "biz",
    "uid": "alice",
    "relay": rooms_pb2.RelayRef(address="relay:7"),
}


def commands(
    *, rooms_refuse: frozenset[str] = frozenset(), relay_refuses: frozenset[str] = frozenset()
) -> tuple[RoomCommands, Fake, Relays]:
    rooms = Fake(
        {
            "StartPublish": rooms_pb2.StartPublishResponse(feed_id="f1", **SLOT),
            "StartSubscribe": rooms_pb2.StartSubscribeResponse(**SLOT),
        },
        set(rooms_refuse),
    )
    relays = Relays(
        Fake(
            {
                "Publish": relay_pb2.PublishResponse(sdp_answer="answer", tracks=TRACKS),
                "Subscribe": relay_pb2.SubscribeResponse(
                    sdp_answer="answer", subscription_id="s1", tracks=TRACKS
                ),
            },
            set(relay_refuses),
        )
    )
    room_commands = RoomCommands(
        None,  # type: ignore[arg-type]
        rooms,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        relays,  # type: ignore[arg-type]
        timeout_s=1,
        relay_timeout_s=1,
    )
    return room_commands, rooms, relays


def session() -> Session:
    return Session(outbound_limit=10)


PUBLISH = {"media_type": 2, "tag": "mic", "sdp": OFFER}
SUBSCRIBE = {"feed_id": "f1", "audio": True, "video": False, "sdp": OFFER}


async def test_a_publish_is_reserved_negotiated_at_the_named_relay_and_completed() -> None:
    room_commands, rooms, relays = commands()
    caller = session()
    assert await room_commands._publish(caller, PUBLISH) == {"feed_id": "f1", "sdp": "answer"}
    assert rooms.names() == ["StartPublish", "CompletePublish"]
    assert relays.addresses == ["relay:7"]
    [(_, offered)] = relays.relay.calls
    assert (offered.room_id, offered.uid, offered.feed_id, offered.sdp_offer) == ("r1", "alice", "f1", OFFER)
    completed = rooms.calls[1][1]
    assert (completed.session_id, completed.feed_id, list(completed.tracks)) == (caller.id, "f1", TRACKS)


async def test_a_subscribe_goes_the_same_way() -> None:
    room_commands, rooms, relays = commands()
    answer = await room_commands._subscribe(session(), SUBSCRIBE)
    assert answer == {"feed_id": "f1", "subscription_id": "s1", "sdp": "answer"}
    assert rooms.names() == ["StartSubscribe", "CompleteSubscribe"]
    [(_, offered)] = relays.relay.calls
    assert (offered.feed_id, offered.audio, offered.video) == ("f1", True, False)
    assert rooms.calls[1][1].subscription_id == "s1"


@pytest.mark.parametrize(
    ("command", "params", "negotiate", "cancel"),
    [
        ("_publish", PUBLISH, "Publish", "CancelPublish"),
        ("_subscribe", SUBSCRIBE, "Subscribe", "CancelSubscribe"),
    ],
)
async def test_a_relay_that_refuses_has_the_reservation_cancelled(
    command: str, params: dict[str, Any], negotiate: str, cancel: str
) -> None:
    room_commands, rooms, _ = commands(relay_refuses=frozenset({negotiate}))
    with pytest.raises(ParleyError) as refused:
        await getattr(room_commands, command)(session(), params)
    assert refused.value.message == f"{negotiate} refused"
    assert rooms.names()[1:] == [cancel]
    assert rooms.calls[1][1].feed_id == "f1"


@pytest.mark.parametrize(
    ("command", "params", "complete", "stop", "stopped"),
    [
        ("_publish", PUBLISH, "CompletePublish", "Unpublish", ("feed_id", "f1")),
        ("_subscribe", SUBSCRIBE, "CompleteSubscribe", "Unsubscribe", ("subscription_id", "s1")),
    ],
)
async def test_a_completion_refused_stops_the_stream_at_the_relay(
    command: str, params: dict[str, Any], complete: str, stop: str, stopped: tuple[str, str]
) -> None:
    room_commands, _, relays = commands(rooms_refuse=frozenset({complete}))
    with pytest.raises(ParleyError) as refused:
        await getattr(room_commands, command)(session(), params)
    assert refused.value.message == f"{complete} refused"
    assert relays.relay.names()[1:] == [stop]
    request = relays.relay.calls[1][1]
    assert (request.room_id, getattr(request, stopped[0])) == ("r1", stopped[1])


async def test_a_failed_undo_is_logged_and_the_first_failure_answered() -> None:
    room_commands, rooms, _ = commands(
        relay_refuses=frozenset({"Publish"}), rooms_refuse=frozenset({"CancelPublish"})
    )
    with pytest.raises(ParleyError) as refused:
        await room_commands._publish(session(), PUBLISH)
    assert refused.value.message == "Publish refused"
    assert rooms.names() == ["StartPublish", "CancelPublish"]
