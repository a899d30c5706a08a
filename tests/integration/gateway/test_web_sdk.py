"""The Web SDK (docs/web-sdk.md) in headless Chromium against a whole platform on loopback: a customer's page,
written only from the seed's Web API and served from another origin than the gateway's, publishes its fake
camera through /sdk/parley.js and a second tab decodes it; the gateway's callee page (/phone) answers a
device's call (the device: a protocol v1 client with aiortc media), media both ways, calls a device that
answers (seed 003 initByCaller), and the call ends by either side's hang-up or the time limit with the
seed's events. Also: which origins the gateway admits, and the seed's codes reaching the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiortc import RTCSessionDescription
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from services.core.config import ServiceName
from tests.integration.chromium import serving, start_chromium
from tests.integration.licence_helpers import App, create_app
from tests.integration.protocol_client import Client, Connections
from tests.integration.rooms.conftest import Peer
from tests.integration.rooms.test_calls_ws import HANG_UP, video_call
from tests.testing import Platform, start_platform

pytestmark = pytest.mark.integration

CUSTOMER_PAGE = Path(__file__).parent / "customer_page"
# Generous: the 2-core machine is shared with other tests.
MEDIA_TIMEOUT_S = 30.0
FRAMES = 10


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with start_platform(
        tmp_path_factory.mktemp("web-sdk"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.GATEWAY,
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def app(platform: Platform) -> App:
    return await create_app(platform.licence, "web-sdk-tests")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), script_timeout_s=MEDIA_TIMEOUT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
async def customer_site() -> AsyncIterator[str]:
    """The customer's own web server: another origin (another port) than the gateway's."""
    async with serving(
        Starlette(routes=[Mount("/", StaticFiles(directory=CUSTOMER_PAGE, html=True))])
    ) as url:
        yield url


class Tab:
    """One browser tab. WebDriver calls block: they run in a thread while this loop runs the platform."""

    def __init__(self, driver: WebDriver, handle: str) -> None:
        self.driver = driver
        self.handle = handle

    async def run(self, script: str, *args: Any) -> Any:
        def in_tab() -> Any:
            self.driver.switch_to.window(self.handle)
            return self.driver.execute_script(script, *args)

        return await asyncio.to_thread(in_tab)

    async def click(self, element_id: str) -> None:
        def in_tab() -> None:
            self.driver.switch_to.window(self.handle)
            self.driver.find_element(By.ID, element_id).click()

        await asyncio.to_thread(in_tab)

    async def until(self, script: str, timeout_s: float = MEDIA_TIMEOUT_S) -> Any:
        """Runs `script` until it returns something truthy; that."""
        async with asyncio.timeout(timeout_s):
            while not (value := await self.run(script)):
                await asyncio.sleep(0.2)
        return value

    async def callback(self, name: str) -> list[Any]:
        """The arguments of the first seed callback of that name the customer page received."""
        script = f"return window.callbacks.filter((call) => call[0] === {json.dumps(name)});"
        try:
            calls = await self.until(script)
        except TimeoutError:
            got = await self.run("return window.callbacks;")
            raise AssertionError(f"no {name}; the page's callbacks: {got}") from None
        return list(calls[0][1:])

    async def frames_decoded(self, stream_map: str) -> int:
        # The SDK's peer connections, read by the test only: a headless <video> may report no size.
        return int(
            await asyncio.to_thread(
                self._execute_async,
                f"""const done = arguments[0];
                const pcs = Array.from({stream_map}.values()).map((s) => s.pc);
                Promise.all(pcs.map((pc) => pc.getStats())).then((reports) => {{
                  let frames = 0;
                  reports.forEach((r) => r.forEach((s) => {{
                    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
                  }}));
                  done(frames);
                }});""",
            )
        )

    def _execute_async(self, script: str) -> Any:
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_async_script(script)


@pytest.fixture
async def tabs(chromium: WebDriver) -> AsyncIterator[Any]:
    opened: list[str] = []

    async def open_tab(url: str) -> Tab:
        def open_in_browser() -> str:
            if opened or len(chromium.window_handles) > 1:
                chromium.switch_to.new_window("tab")
            else:
                chromium.switch_to.window(chromium.window_handles[0])
            chromium.get(url)
            return str(chromium.current_window_handle)

        handle = await asyncio.to_thread(open_in_browser)
        opened.append(handle)
        return Tab(chromium, handle)

    yield open_tab

    def close_all() -> None:
        # Leaving a page closes its peer connections and WebSocket; one tab stays for the next test.
        for handle in opened:
            chromium.switch_to.window(handle)
            chromium.get("about:blank")
        for handle in opened[1:]:
            chromium.switch_to.window(handle)
            chromium.close()
        chromium.switch_to.window(opened[0])

    await asyncio.to_thread(close_all)


def config_param(platform: Platform, app: App, uid: str) -> dict[str, str]:
    """Seed 002 Connect config_param: no workspace_id (the server knows the app's)."""
    expire_time_ms = int((time.time() + 3600) * 1000)
    return {
        "uid": uid,
        "room_server_url": platform.ws_url,
        "biz_name": app.biz_name,
        "sub_biz": app.app_id,
        "sign": app.sign(uid, expire_time_ms),
    }


def new_uid() -> str:
    return f"u_{uuid.uuid4().hex[:10]}"


async def test_a_page_of_another_origin_publishes_and_a_second_tab_subscribes_through_the_sdk(
    platform: Platform, app: App, customer_site: str, tabs: Any
) -> None:
    gateway = platform.http_url
    assert customer_site.split(":")[-1] != gateway.split(":")[-1], "the page needs an origin of its own"
    host = await tabs(f"{customer_site}/")
    await host.run(
        "host(...arguments).catch((e) => window.callbacks.push(['error', String(e)]));",
        gateway,
        config_param(platform, app, new_uid()),
    )
    assert await host.callback("OnConnectOK") == []
    assert await host.callback("OnInitRoomConfigOK") == []
    room_id, rtoken = await host.callback("OnCreateRoomSucc")
    assert room_id and rtoken

    guest = await tabs(f"{customer_site}/")
    guest_uid = new_uid()
    await guest.run(
        "guest(...arguments).catch((e) => window.callbacks.push(['error', String(e)]));",
        gateway,
        config_param(platform, app, guest_uid),
        room_id,
        rtoken,
    )
    assert await guest.callback("OnJoinRoomSucc") == []
    assert (await host.callback("OnNewJoinerIn")) == [guest_uid]
    (feed_id,) = await host.callback("OnPublishSucc")
    (feed,) = await guest.callback("OnNewPublish")
    assert (feed["feedId"], feed["tag"]) == (feed_id, "camera")
    subscribed_feed, sid = await guest.callback("OnSubscribeSucc")
    assert subscribed_feed == feed_id and sid
    # The page's labels got the ids (subscribe_streamId_id, feedId_id).
    assert await guest.run("return document.getElementById('feedId1').textContent;") == feed_id

    async with asyncio.timeout(MEDIA_TIMEOUT_S):
        while (frames := await guest.frames_decoded("window.controller._subscriptions")) < FRAMES:
            await asyncio.sleep(0.3)
    assert frames >= FRAMES
    assert await host.run("return window.callbacks.filter((c) => c[0].endsWith('Failed'));") == []


async def test_the_sdk_reports_the_seeds_codes_for_a_bad_signature_and_an_uninitialised_room(
    platform: Platform, app: App, customer_site: str, tabs: Any
) -> None:
    tab = await tabs(f"{customer_site}/")
    config = config_param(platform, app, new_uid())
    config["sign"] = config_param(platform, app, new_uid())["sign"]  # another uid's signature
    await tab.run(
        """const [gateway, config] = arguments;
        const script = document.createElement("script");
        script.src = `${gateway}/sdk/parley.js`;
        script.onload = () => {
          const c = new MeetingController();
          c.OnConnectFailed = (code, msg) => window.callbacks.push(["OnConnectFailed", code]);
          c.OnCreateRoomFailed = (code, msg) => window.callbacks.push(["OnCreateRoomFailed", code]);
          c.CreateRoom(config.sign);
          c.Connect(config);
        };
        document.head.appendChild(script);""",
        platform.http_url,
        config,
    )
    # Seed 002 6.3.4: -301 a room not initialised, -102 a connection whose initialisation failed.
    assert await tab.callback("OnCreateRoomFailed") == [-301]
    assert await tab.callback("OnConnectFailed") == [-102]


async def test_the_gateway_serves_the_sdk_and_the_socket_to_allowed_origins_only(
    platform: Platform, app: App, customer_site: str
) -> None:
    async with httpx.AsyncClient(base_url=platform.http_url) as http:
        allowed = await http.get("/sdk/parley.mjs", headers={"Origin": customer_site})
        foreign = await http.get("/sdk/parley.js", headers={"Origin": "http://pages.example.com"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == customer_site
    assert "export const MeetingController" in allowed.text
    # The script itself may be loaded by any page (a classic <script> needs no CORS), without the header.
    assert foreign.status_code == 200 and "access-control-allow-origin" not in foreign.headers
    assert "class MeetingController" in foreign.text

    with pytest.raises(InvalidStatus) as refused:
        await connect(platform.ws_url, proxy=None, origin="http://pages.example.com")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    async with connect(platform.ws_url, proxy=None, origin=customer_site) as ws:  # type: ignore[arg-type]
        client = Client(ws)
        # v1's connect without workspace_id; a v1 client that names it is checked as before.
        params = app.connect_params(new_uid())
        workspace_id = params.pop("workspace_id")
        assert (await client.ok("connect", **params))["uid"] == params["uid"]
    async with connect(platform.ws_url, proxy=None) as ws:
        wrong = await Client(ws).call("connect", **params, workspace_id=workspace_id + "x")
        assert (wrong["code"], wrong["reason"]) == (-102, "SIGNATURE_WRONG_APP")


# ---- the phone side (seed 003): the gateway's callee page answers a device's call ----


async def phone_page(platform: Platform, app: App, tabs: Any) -> tuple[Tab, str]:
    uid = new_uid()
    config = config_param(platform, app, uid)
    del config["room_server_url"]  # the page's own gateway
    tab = await tabs(f"{platform.http_url}/phone?{urlencode(config)}")
    await tab.until(f"return document.getElementById('status').textContent === 'connected as {uid}';")
    return tab, uid


async def voip_event(tab: Tab, name: str) -> dict[str, Any]:
    events = await tab.until(f"return window.voipEvents.filter((e) => e.eventName === {json.dumps(name)});")
    return dict(events[0])


@pytest.fixture
async def connections(app: App) -> AsyncIterator[Connections]:
    opened = Connections(app)
    yield opened
    await opened.close()


async def test_the_phone_page_answers_a_device_call_with_media_both_ways_and_hangs_up(
    platform: Platform, app: App, tabs: Any, connections: Connections
) -> None:
    phone, uid = await phone_page(platform, app, tabs)
    device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=uid)
    call_id = (await device.ok("call", **video_call(uid, time_limit_s=600)))["call_id"]
    ringing = await voip_event(phone, "ringing")
    assert (ringing["callId"], ringing["sn"], ringing["timeLimit"]) == (call_id, device.uid, 600)
    assert await phone.run("return document.getElementById('time-limit').textContent;") == "of 10:00"

    await phone.click("answer")
    async with media_both_ways(phone, device, await device.event("on_call_answered")):
        # keepTime runs on the page (seed 003 "calling" events).
        calling = await voip_event(phone, "calling")
        assert calling["callId"] == call_id and calling["keepTime"] >= 900
        await phone.until("return document.getElementById('keep-time').textContent !== '0:00';")

        await phone.click("hang-up")
        assert (await device.event("on_call_command"))["command"] == HANG_UP
        ended = await device.event("on_call_end")
        assert (ended["reason"], ended["by"]) == ("hang_up", "user") and ended["keep_time_ms"] > 0
        page_end = await voip_event(phone, "end")
        assert (page_end["reason"], page_end["by"]) == ("hang_up", "user")
        ended_text = await phone.run("return document.getElementById('ended').textContent;")
        assert "call ended: hang_up" in ended_text


async def test_the_phone_page_calls_a_device_that_answers_with_media_both_ways(
    platform: Platform, app: App, tabs: Any, connections: Connections
) -> None:
    """Seed 003 initByCaller with timeLimit, from the page; the device answers and hangs up."""
    phone, uid = await phone_page(platform, app, tabs)
    device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=uid)
    await phone.run(
        "document.getElementById('callee-sn').value = arguments[0];"
        "document.getElementById('call-time-limit').value = '300';",
        device.uid,
    )
    await phone.click("call")
    incoming = await device.event("on_call_incoming")
    assert (incoming["caller"], incoming["open_id"], incoming["time_limit_s"]) == ("user", uid, 300)
    dialing = await voip_event(phone, "dialing")
    assert (dialing["callId"], dialing["sn"], dialing["timeLimit"]) == (incoming["call_id"], device.uid, 300)
    answered = await device.ok("answer_call", call_id=incoming["call_id"])
    async with media_both_ways(phone, device, answered):
        await voip_event(phone, "calling")
        await device.ok("hang_up", call_id=incoming["call_id"])
        page_end = await voip_event(phone, "end")
        assert (page_end["reason"], page_end["by"]) == ("hang_up", "device") and page_end["keepTime"] > 0


@contextlib.asynccontextmanager
async def media_both_ways(phone: Tab, device: Client, answered: dict[str, Any]) -> AsyncIterator[None]:
    """The device joins the call's room, publishes aiortc's test video and subscribes to the phone's
    camera: returns once the device decoded the phone's frames and the phone the device's."""
    await device.ok("join_room", room_id=answered["room_id"], rtoken=answered["rtoken"])
    sender, receiver = Peer(send=True), Peer(send=False)
    try:
        published = await device.ok("publish", media_type=1, sdp=await sender.offer())
        await sender.pc.setRemoteDescription(type_answer(published["sdp"]))
        phone_feed = await phone_feed_id(device)
        subscribed = await device.ok("subscribe", feed_id=phone_feed, sdp=await receiver.offer())
        await receiver.pc.setRemoteDescription(type_answer(subscribed["sdp"]))
        video = next(t.receiver.track for t in receiver.pc.getTransceivers() if t.kind == "video")
        async with asyncio.timeout(MEDIA_TIMEOUT_S):
            for _ in range(FRAMES):
                await video.recv()
        async with asyncio.timeout(MEDIA_TIMEOUT_S):
            while await phone.frames_decoded("window.phone._subscriptions") < FRAMES:
                await asyncio.sleep(0.3)
        yield
    finally:
        for peer in (sender, receiver):
            await peer.pc.close()


async def test_the_device_hangs_up_and_the_phone_page_sees_the_end(
    platform: Platform, app: App, tabs: Any, connections: Connections
) -> None:
    phone, uid = await phone_page(platform, app, tabs)
    device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=uid)
    call_id = (await device.ok("call", **video_call(uid)))["call_id"]
    await voip_event(phone, "ringing")
    await phone.click("answer")
    await device.event("on_call_answered")
    await device.ok("hang_up", call_id=call_id)
    page_end = await voip_event(phone, "end")
    assert (page_end["callId"], page_end["reason"], page_end["by"]) == (call_id, "hang_up", "device")


async def test_the_time_limit_ends_the_call_on_the_phone_page(
    platform: Platform, app: App, tabs: Any, connections: Connections
) -> None:
    phone, uid = await phone_page(platform, app, tabs)
    device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=uid)
    await device.ok("call", **video_call(uid, time_limit_s=2))
    await voip_event(phone, "ringing")
    await phone.click("answer")
    await device.event("on_call_answered")
    assert (await device.event("on_call_command"))["command"] == HANG_UP
    assert (await device.event("on_call_end"))["reason"] == "time_limit"
    page_end = await voip_event(phone, "end")
    assert (page_end["reason"], page_end["by"]) == ("time_limit", "")
    assert page_end["keepTime"] >= 2000


async def test_the_phone_page_rejects_a_call(
    platform: Platform, app: App, tabs: Any, connections: Connections
) -> None:
    phone, uid = await phone_page(platform, app, tabs)
    device = await connections.open_device(platform.ws_url, platform.licence, authorised_user=uid)
    await device.ok("call", **video_call(uid))
    await voip_event(phone, "ringing")
    await phone.click("reject")
    ended = await device.event("on_call_end")
    assert (ended["reason"], ended["by"], ended["keep_time_ms"]) == ("rejected", "user", 0)
    assert (await voip_event(phone, "end"))["reason"] == "rejected"


def type_answer(sdp: str) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=sdp, type="answer")


async def phone_feed_id(device: Client) -> str:
    """The feed the phone publishes in the call's room: in the attendance list, or published later."""
    attendance = await device.event("on_room_attendance_list")
    for participant in attendance["participants"]:
        for feed in participant["publish"]:
            return str(feed["feed_id"])
    return str((await device.event("on_new_publish"))["feed"]["feed_id"])
