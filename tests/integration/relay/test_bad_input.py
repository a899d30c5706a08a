"""Bad requests get a clear error with a code, peers that never connect are closed with 5004, and none of
it disturbs a stream that is flowing through the relay meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from parley.relay.v1 import relay_pb2
from relay_clients import BIZ_NAME, Publisher, Subscriber, publish, subscribe, wait_until

from services.core.errors import ParleyError, from_rpc_error
from services.relay.close_codes import CloseCode

pytestmark = pytest.mark.integration


@dataclass
class Bystander:
    """A feed with a subscriber, flowing while the bad requests arrive."""

    room_id: str
    subscriber: Subscriber

    def frames(self) -> int:
        return len(self.subscriber.received.video_frames)


@pytest.fixture
async def bystander(relay_service) -> AsyncIterator[Bystander]:
    room_id = f"room-{uuid.uuid4()}"
    publisher, subscriber = Publisher(), Subscriber(audio=False)
    await publish(relay_service.stub, publisher, room_id=room_id, feed_id="cam")
    await subscribe(
        relay_service.stub, subscriber, room_id=room_id, feed_id="cam", uid="bystander", audio=False
    )
    await wait_until(lambda: len(subscriber.received.video_frames) >= 10)
    yield Bystander(room_id=room_id, subscriber=subscriber)
    await subscriber.close()
    await publisher.close()


async def refused(call) -> ParleyError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return from_rpc_error(error.value)


def publish_request(room_id: str, feed_id: str, sdp: str) -> relay_pb2.PublishRequest:
    return relay_pb2.PublishRequest(
        biz_name=BIZ_NAME, room_id=room_id, uid="mallory", feed_id=feed_id, sdp_offer=sdp
    )


async def test_bad_offers_and_missing_feeds_get_coded_errors_and_the_flowing_stream_goes_on(
    relay_service, bystander
) -> None:
    stub, room_id = relay_service.stub, bystander.room_id
    before = bystander.frames()
    peers_before = len(relay_service.guard.relay_peers)

    for sdp in ("", "hello", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "v=0\r\nm=video x y\r\n"):
        error = await refused(stub.Publish(publish_request(room_id, "bad", sdp)))
        assert (error.code, error.kind.reason, error.kind.status) == (
            5003,
            "SDP_MALFORMED",
            grpc.StatusCode.INVALID_ARGUMENT,
        ), sdp

    g722 = Publisher(video=None, audio="audio/G722")
    error = await refused(stub.Publish(publish_request(room_id, "g722", await g722.offer())))
    await g722.close()
    assert (error.code, error.kind.reason) == (5003, "CODEC_UNSUPPORTED")
    assert "audio/G722" in error.message

    viewer = Subscriber()
    error = await refused(
        stub.Subscribe(
            relay_pb2.SubscribeRequest(
                biz_name=BIZ_NAME,
                room_id=room_id,
                uid="viewer",
                feed_id="nobody",
                sdp_offer=await viewer.offer(),
                audio=True,
                video=True,
            )
        )
    )
    assert (error.code, error.kind.reason, error.kind.status) == (
        5003,
        "FEED_NOT_FOUND",
        grpc.StatusCode.NOT_FOUND,
    )
    await viewer.close()

    # The feed is VP8; a subscriber that only takes H.264 cannot have it forwarded, and nothing transcodes.
    h264_only = Subscriber(audio=False, video_codec="video/H264")
    error = await refused(
        stub.Subscribe(
            relay_pb2.SubscribeRequest(
                biz_name=BIZ_NAME,
                room_id=room_id,
                uid="h264",
                feed_id="cam",
                sdp_offer=await h264_only.offer(),
                video=True,
            )
        )
    )
    assert (error.code, error.kind.reason) == (5003, "CODEC_UNSUPPORTED")
    await h264_only.close()

    again = Publisher()
    error = await refused(stub.Publish(publish_request(room_id, "cam", await again.offer())))
    await again.close()
    assert (error.code, error.kind.reason) == (9805001, "FEED_ALREADY_PUBLISHED")

    twice = Subscriber(audio=False)
    error = await refused(
        stub.Subscribe(
            relay_pb2.SubscribeRequest(
                biz_name=BIZ_NAME,
                room_id=room_id,
                uid="bystander",
                feed_id="cam",
                sdp_offer=await twice.offer(),
                video=True,
            )
        )
    )
    await twice.close()
    assert (error.code, error.kind.reason) == (9805002, "ALREADY_SUBSCRIBED")

    # Each refusal came before a peer connection was made for it, except the H.264-only subscriber's.
    assert len(relay_service.guard.relay_peers) - peers_before <= 1
    await wait_until(lambda: bystander.frames() >= before + 30)


async def test_a_peer_that_never_connects_is_closed_with_5004_alone(relay_service, bystander) -> None:
    stub, relay, room_id = relay_service.stub, relay_service.relay, bystander.room_id
    silent = Publisher()
    # The client sends its offer and then never applies the answer, so ICE never completes.
    response = await stub.Publish(publish_request(room_id, "silent", await silent.offer()))
    assert response.sdp_answer
    feed = relay.feed(room_id, "silent")
    before = bystander.frames()
    await wait_until(lambda: feed.peer.close_code is not None, timeout_s=15)
    assert feed.peer.close_code == CloseCode.CONNECT_TIMEOUT
    error = await refused(stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="silent")))
    assert error.kind.reason == "FEED_NOT_FOUND"
    await silent.close()
    await wait_until(lambda: bystander.frames() >= before + 15)
