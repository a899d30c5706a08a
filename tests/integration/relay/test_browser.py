"""Headless Chromium as a real client of the relay, on loopback: the browser publishes its fake camera and
microphone and an aiortc subscriber decodes them; an aiortc publisher's stream is decoded by the browser
(`framesDecoded` from the page's getStats(): a headless <video> may report no size).

Selenium drives Debian's /usr/bin/chromium through /usr/bin/chromedriver, which `make install` installs:
without them these tests fail rather than skip. The page (browser/) is served by a small app on
127.0.0.1 that hands its SDP offers to the relay's gRPC Publish and Subscribe.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from parley.relay.v1 import media_pb2, relay_pb2
from relay_clients import (
    BIZ_NAME,
    HEIGHT,
    WIDTH,
    Publisher,
    Subscriber,
    assert_all_media_on_one_port,
    publish,
    subscribe,
    wait_until,
)
from selenium.webdriver.chrome.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tests.integration.chromium import serving, start_chromium

pytestmark = pytest.mark.integration

PAGE = Path(__file__).parent / "browser"

# Generous: the 2-core machine may be busy with other tests. Typical times are printed.
FIRST_FRAME_TIMEOUT_S = 20.0
SCRIPT_TIMEOUT_S = 30.0


def room() -> str:
    return f"room-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), script_timeout_s=SCRIPT_TIMEOUT_S)
    yield driver
    driver.quit()


def page_app(stub: Any) -> Starlette:
    """The page and two endpoints that pass the browser's offer to the relay and return its answer."""

    def answer(sdp: str, stream_id: str, tracks: Any) -> JSONResponse:
        return JSONResponse({"sdp": sdp, "id": stream_id, "tracks": [track.codec for track in tracks]})

    async def publish_offer(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            response = await stub.Publish(
                relay_pb2.PublishRequest(
                    biz_name=BIZ_NAME,
                    room_id=body["room"],
                    uid=body["uid"],
                    feed_id=body["feed"],
                    sdp_offer=body["sdp"],
                )
            )
        except grpc.aio.AioRpcError as error:
            return JSONResponse({"error": error.details()}, status_code=502)
        return answer(response.sdp_answer, response.publication_id, response.tracks)

    async def subscribe_offer(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            response = await stub.Subscribe(
                relay_pb2.SubscribeRequest(
                    biz_name=BIZ_NAME,
                    room_id=body["room"],
                    uid=body["uid"],
                    feed_id=body["feed"],
                    sdp_offer=body["sdp"],
                    audio=True,
                    video=True,
                )
            )
        except grpc.aio.AioRpcError as error:
            return JSONResponse({"error": error.details()}, status_code=502)
        return answer(response.sdp_answer, response.subscription_id, response.tracks)

    return Starlette(
        routes=[
            Route("/publish", publish_offer, methods=["POST"]),
            Route("/subscribe", subscribe_offer, methods=["POST"]),
            Mount("/", StaticFiles(directory=PAGE, html=True)),
        ]
    )


@pytest.fixture(scope="module")
async def page_url(relay_service: Any) -> AsyncIterator[str]:
    async with serving(page_app(relay_service.stub)) as base_url:
        yield f"{base_url}/"


class Page:
    """The test page in Chromium. WebDriver calls block, so they run in a thread while this event loop
    serves the page's requests and runs the relay."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def call(self, function: str, *args: Any) -> Any:
        script = (
            "const done = arguments[arguments.length - 1];"
            "const args = Array.from(arguments).slice(0, -1);"
            f"Promise.resolve().then(() => parley.{function}(...args))"
            ".then((value) => done({value}), (error) => done({error: String(error)}));"
        )
        result = await asyncio.to_thread(self.driver.execute_async_script, script, *args)
        assert "error" not in result, f"parley.{function}: {result['error']}"
        return result.get("value")

    async def wait_for_stats(self, peer: int, condition: Any, timeout_s: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while not condition(stats := await self.call("stats", peer)):
                await asyncio.sleep(0.1)
        return stats


@pytest.fixture
async def page(chromium: WebDriver, page_url: str) -> AsyncIterator[Page]:
    # A fresh page per test: reloading closes the previous test's peer connections.
    await asyncio.to_thread(chromium.get, page_url)
    page = Page(chromium)
    yield page
    await page.call("closeAll")


def assert_loopback_only(negotiated: dict[str, Any]) -> None:
    gathered = negotiated["candidates"]
    assert "127.0.0.1" in gathered, f"Chromium gathered no loopback candidate: {gathered}"
    assert not [address for address in gathered if address.endswith(".local")], gathered
    sent = [
        line.split(" ")[4] for line in negotiated["offer"].splitlines() if line.startswith("a=candidate:")
    ]
    assert sent and all(address.startswith("127.") for address in sent), sent


def assert_on_loopback(pair: dict[str, str]) -> None:
    """The candidate pair ICE selected runs between loopback addresses at both ends. Chromium also checks
    from its sockets on the machine's other addresses; the relay leaves those checks unanswered."""
    assert pair["remote"].startswith("127.") and pair["local"].startswith("127."), pair


async def test_the_browser_publishes_its_camera_and_an_aiortc_subscriber_decodes_it(
    relay_service: Any, page: Page
) -> None:
    stub, room_id = relay_service.stub, room()
    published = await page.call("publish", room_id, "webcam", "browser")
    assert_loopback_only(published)
    # Chromium offers VP8 and Opus first; the relay keeps the publisher's first forwardable codec.
    assert sorted(published["tracks"]) == ["audio/opus", "video/VP8"]

    subscriber = Subscriber()
    try:
        started = time.monotonic()
        await subscribe(stub, subscriber, room_id=room_id, feed_id="webcam", uid="bob")
        received = subscriber.received
        await wait_until(lambda: bool(received.video_frames), timeout_s=FIRST_FRAME_TIMEOUT_S)
        first_frame_ms = (received.video_frames[0][0] - started) * 1000
        await wait_until(
            lambda: len(received.video_frames) >= 30 and len(received.audio_frames) >= 50,
            timeout_s=FIRST_FRAME_TIMEOUT_S,
        )
        sizes = {(width, height) for _, width, height, _ in received.video_frames}
        print(
            f"\nbrowser → relay → aiortc: first decoded video frame {first_frame_ms:.0f} ms after Subscribe;"
            f" sizes {sorted(sizes)}"
        )
        # Chromium may scale its camera down while it probes the bandwidth, never up.
        assert all(0 < width <= WIDTH and 0 < height <= HEIGHT for width, height in sizes), sizes

        sent = await page.call("stats", published["peer"])
        assert_on_loopback(sent["pair"])
        if relay_service.relay.udp_address is not None:
            # One UDP port: the browser's media and the aiortc subscriber's go through it, and the relay
            # holds no other UDP socket.
            assert sent["pair"]["remotePort"] == relay_service.relay.udp_address[1], sent["pair"]
            assert_all_media_on_one_port(relay_service.relay, [subscriber.pc], expected_peers=2)
        assert sent["outbound"]["video"]["framesEncoded"] > 0, sent
        feed = (await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="webcam"))).feed
        assert feed.state == relay_pb2.STREAM_STATE_CONNECTED
        video = next(track for track in feed.tracks if track.kind == media_pb2.MEDIA_KIND_VIDEO)
        assert video.key_frames >= 1 and video.width > 0
    finally:
        await subscriber.close()
        await stub.Unpublish(relay_pb2.UnpublishRequest(room_id=room_id, feed_id="webcam"))
    assert relay_service.guard.relay == [], f"the relay created {relay_service.guard.relay}"


async def test_an_aiortc_publisher_is_decoded_by_the_browser(relay_service: Any, page: Page) -> None:
    stub, room_id = relay_service.stub, room()
    publisher = Publisher()
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        subscribed = await page.call("subscribe", room_id, "cam", "browser")
        assert_loopback_only(subscribed)
        assert sorted(subscribed["tracks"]) == ["audio/opus", "video/VP8"]

        first_frame_ms = await page.call(
            "firstDecodedFrame", subscribed["peer"], FIRST_FRAME_TIMEOUT_S * 1000
        )
        stats = await page.wait_for_stats(
            subscribed["peer"],
            lambda stats: (
                stats["inbound"].get("video", {}).get("framesDecoded", 0) >= 30
                and stats["inbound"].get("audio", {}).get("totalSamplesReceived", 0) > 0
            ),
            timeout_s=FIRST_FRAME_TIMEOUT_S,
        )
        video, audio = stats["inbound"]["video"], stats["inbound"]["audio"]
        print(
            f"\naiortc → relay → browser: first decoded video frame {first_frame_ms:.0f} ms after subscribe()"
            f" began; {video['framesDecoded']} frames decoded ({video.get('frameWidth')}x"
            f"{video.get('frameHeight')}), {audio['totalSamplesReceived']} audio samples"
        )
        assert_on_loopback(stats["pair"])
        assert (video["codec"], audio["codec"]) == ("video/VP8", "audio/opus")
        # Reported by the decoder, where the headless <video> element may not.
        assert (video.get("frameWidth"), video.get("frameHeight")) in {(WIDTH, HEIGHT), (None, None)}, video

        subscription = (
            await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, subscription_id=subscribed["id"]))
        ).subscription
        assert subscription.state == relay_pb2.STREAM_STATE_CONNECTED
        assert all(track.packets_sent > 0 for track in subscription.tracks)
    finally:
        await publisher.close()
    assert relay_service.guard.relay == [], f"the relay created {relay_service.guard.relay}"
