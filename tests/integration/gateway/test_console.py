"""The operator console (/console, docs/console.md) in headless Chromium against `parley up` on
loopback, every page as an operator uses it: creates an app (its key shown once), renames it, generates
and verifies a signature (and sees why a bad one fails), adds licences and activates a device, looks up a
live room of an aiortc call with its participants and feeds, plays a recording with seeking, downloads and
deletes it, reads usage figures equal to the billing API's in the four tabs, reveals the webhook secret,
reads the statement, and deletes the app. Every request the browser makes is to 127.0.0.1; screenshots
of each page are saved in the test's tmp folder."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from services.core.config import ServiceName
from tests.integration.chromium import requested_urls, start_chromium
from tests.integration.cli.running import RunningPlatform, running_platform
from tests.integration.licence_helpers import App
from tests.integration.media_call import publish_and_subscribe
from tests.integration.protocol_client import Connections
from tests.testing import start_platform

pytestmark = pytest.mark.integration

# Generous: seven services, a relay call and a recording share a 2-core machine with other tests.
TIMEOUT_S = 90.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """The platform as an operator runs it: `parley up`, every service its own process."""
    with running_platform(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), script_timeout_s=TIMEOUT_S, log_network=True)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


class Console:
    """The console page in `driver`, driven as a person would: open a page, fill a form, press a button."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.requested: list[str] = []
        self._visits = itertools.count()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)

    async def until(self, what: str, check: Callable[[], Any]) -> Any:
        """`check()`'s first truthy answer, asked until TIMEOUT_S."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                answer = await self.run(check)
            except StaleElementReferenceException:
                # The page redrew between finding an element and reading it (it redraws after every
                # action): not seen yet, ask again.
                answer = None
            if answer:
                return answer
            if time.monotonic() > deadline:
                await self.shot(f"failed-{what.replace(' ', '-')}")
                raise AssertionError(f"{what}: not seen in {TIMEOUT_S} s (screenshot in {self.shots})")
            await asyncio.sleep(0.2)

    async def open(self, page: str) -> None:
        """A fresh load of the page (another query string, so not a same-document hash change)."""
        await self.run(self.driver.get, f"{self.base_url}/console?visit={next(self._visits)}#{page}")
        await self.until(f"{page} ready", lambda: self.ready(page))
        # confirm() dialogs answer yes: the test presses "Delete" meaning it.
        await self.run(self.driver.execute_script, "window.confirm = () => true")

    def ready(self, page: str) -> bool:
        """Whether `page` has finished drawing (it redraws after an action changed something)."""
        return bool(self.script("return document.getElementById('page').dataset.ready") == page)

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def find(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.find(css)
        return found[0].text if found else ""

    async def fill(self, form: str, **values: str | bool) -> None:
        def fill() -> None:
            for name, value in values.items():
                element = self.driver.find_element(By.CSS_SELECTOR, f"#{form} [name={name}]")
                if element.tag_name == "select":
                    Select(element).select_by_value(str(value))
                elif element.get_attribute("type") == "checkbox":
                    if element.is_selected() != value:
                        element.click()
                else:
                    element.clear()
                    element.send_keys(str(value))

        await self.run(fill)

    async def submit(self, form: str) -> None:
        await self.run(
            lambda: self.driver.find_element(By.CSS_SELECTOR, f"#{form} button[type=submit]").click()
        )

    async def press(self, label: str, within: str = "#page") -> None:
        """Click the button labelled `label` in `within`, once the page has drawn it."""

        def press() -> bool:
            buttons = self.driver.find_elements(By.CSS_SELECTOR, f"{within} button")
            matching = [button for button in buttons if button.text == label]
            if matching:
                matching[0].click()
            return bool(matching)

        await self.until(f"the button {label!r} in {within}", press)

    async def shot(self, name: str) -> None:
        """The whole page, not only what the window shows."""

        def shot() -> None:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            image = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
            )
            (self.shots / f"{name}.png").write_bytes(base64.b64decode(image["data"]))

        await self.run(shot)

    async def collect_requests(self) -> None:
        self.requested += await self.run(requested_urls, self.driver)


def off_machine(urls: list[str]) -> list[str]:
    """The URLs that would leave the machine: anything but 127.0.0.1, the page's own data:/blob: URLs
    and Chromium's built-in chrome:// pages (its new tab, served from the browser itself)."""
    return [
        url
        for url in urls
        if not url.startswith(("data:", "blob:", "chrome:", "chrome-untrusted:"))
        and urlsplit(url).hostname != "127.0.0.1"
    ]


async def test_console_walks_every_page(
    platform: RunningPlatform, chromium: WebDriver, tmp_path: Path
) -> None:
    base = platform.url
    console = Console(chromium, base, tmp_path)
    await console.run(
        chromium.execute_cdp_cmd,
        "Browser.setDownloadBehavior",
        {"behavior": "allow", "downloadPath": str(tmp_path / "downloads")},
    )
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # Apps: the empty state says what to do; a nameless app is refused next to its field.
        await console.open("apps")
        assert "No apps yet" in await console.run(console.text, "#page")
        await console.shot("01-apps-empty")
        await console.submit("create-app")
        assert (
            await console.run(console.text, '#create-app [data-field="name"] .field-error')
            == "name: required"
        )
        await console.fill("create-app", name="Console doorbells", autoRecord=False)
        await console.submit("create-app")
        private_key = await console.until("the key shown once", lambda: console.text("#private-key"))
        biz_name = await console.run(console.script, "return document.getElementById('app-picker').value")
        listed = (await http.get(f"/v1/apps/{biz_name}")).json()
        assert listed["name"] == "Console doorbells"
        await console.shot("02-apps-created")
        # The licence service's refusal shows next to the field it names.
        await console.fill("app-settings", recordCallbackUrl="ftp://example.com/hook")
        await console.submit("app-settings")
        refusal = await console.until(
            "the refusal", lambda: console.text('#app-settings [data-field="recordCallbackUrl"] .field-error')
        )
        assert "must be an http or https URL" in refusal, refusal
        await console.fill("app-settings", recordCallbackUrl="")
        await console.fill("app-settings", name="Console doorbells 2")
        await console.submit("app-settings")
        await console.until("the renamed app", lambda: "Console doorbells 2" in console.text("#apps-table"))
        assert (await http.get(f"/v1/apps/{biz_name}")).json()["name"] == "Console doorbells 2"
        # Rotate: a new key; a fresh page reveals it again (the seed's 查看密钥).
        await console.press("Rotate key")
        rotated_key = await console.until(
            "the rotated key", lambda: (key := console.text("#private-key")) != private_key and key
        )
        await console.open("apps")
        assert not await console.run(console.find, "#private-key")
        await console.press("Reveal key")
        assert await console.until("the revealed key", lambda: console.text("#private-key")) == rotated_key
        private_key = rotated_key
        app = App(biz_name, listed["appId"], listed["workspaceId"], private_key)

        # Signature tool: a 3-day signature verifies; a changed one fails with the reason and code.
        await console.open("signature")
        await console.fill("sign", uid="alice", ttl="3d")
        await console.submit("sign")
        signature = await console.until("a signature", lambda: console.text("#signature-out"))
        await console.submit("verify")
        verdict = await console.until("the verdict", lambda: console.text("#verdict"))
        assert verdict.startswith(f"Valid: app {app.app_id}"), verdict
        await console.fill(
            "verify", signature=signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
        )
        await console.submit("verify")
        await console.until("a refusal", lambda: console.text("#verdict").startswith("Invalid:"))
        assert "(code " in await console.run(console.text, "#verdict")
        await console.shot("03-signature")

        # Devices: licences added, a device activated against them, then looked up.
        await console.open("devices")
        assert "No licences yet" in await console.run(console.text, "#page")
        await console.fill("add-licences", modelId="M1", type="video", count="5")
        await console.submit("add-licences")
        await console.until("the pool", lambda: console.find('#pools tr[data-key="M1/video"]'))
        await console.fill("activate", modelId="M1", type="video", sns="P1_console01")
        await console.submit("activate")
        await console.until(
            "the activation", lambda: "activated" in console.text('#activations tr[data-key="P1_console01"]')
        )
        await console.fill("device-lookup", sn="P1_console01")
        await console.submit("device-lookup")
        await console.until("the device", lambda: "not registered" in console.text("#device-found"))
        # The pool counts the activation: used 1 of 5.
        await console.until(
            "the pool used", lambda: console.text('#pools tr[data-key="M1/video"]').split()[-2:] == ["1", "5"]
        )
        await console.shot("04-devices")

        # Live rooms: an aiortc call through the relay, recorded, seen with its participants and feed.
        connections = Connections(app)
        call = None
        try:
            alice = await connections.open(platform.ws_url)
            bob = await connections.open(platform.ws_url)
            room = await alice.ok("create_room")
            await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
            call = await publish_and_subscribe(alice, bob)
            await call.video_frame()
            started = await http.post(f"/v1/rooms/{room['room_id']}/recordings", json={"bizName": biz_name})
            assert started.status_code == 201, started.text
            record_id = started.json()["recordId"]

            await console.open("rooms")
            room_css = f'section[data-room="{room["room_id"]}"]'
            assert await console.run(console.find, f'{room_css} tr[data-key="{bob.uid}"]')
            assert call.feed_id in await console.run(console.text, f'{room_css} tr[data-key="{alice.uid}"]')
            assert "relay 127.0.0.1:" in await console.run(console.text, f"{room_css} .room-summary")
            await console.shot("05-rooms")

            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
                    if info["files"] and all(f["video_packets"] > 30 for f in info["files"]):
                        break
                    await asyncio.sleep(0.2)
            stopped = await http.post(
                f"/v1/rooms/{room['room_id']}/recordings/{record_id}/stop", json={"bizName": biz_name}
            )
            assert stopped.status_code == 200, stopped.text

            # Kick: the kicked session hears it was taken out (leaveType 3), the other that it left.
            await console.press("Kick", f'{room_css} tr[data-key="{bob.uid}"]')
            assert (await bob.event("on_leave_room"))["leave_type"] == 3
            assert (await alice.event("on_participant_leave_room"))["participant"] == bob.uid
            await console.until(
                "the room without bob",
                lambda: (
                    console.ready("rooms")
                    and console.find(f'{room_css} tr[data-key="{alice.uid}"]')
                    and not console.find(f'{room_css} tr[data-key="{bob.uid}"]')
                ),
            )
            # Close: everyone is taken out and the room is gone.
            await console.press("Close room", room_css)
            assert (await alice.event("on_leave_room"))["leave_type"] == 3
            await console.until("no rooms", lambda: "No live rooms" in console.text("#page"))
            assert (await http.get(f"/v1/rooms/{room['room_id']}")).status_code == 404
        finally:
            if call is not None:
                await call.close()
            await connections.close()

        # Recordings: listed, played with a seek, downloaded, deleted.
        async def listed_file() -> bool:
            await console.open("recordings")
            return bool(await console.run(console.find, "#recordings tbody tr"))

        deadline = time.monotonic() + TIMEOUT_S
        while not await listed_file():
            assert time.monotonic() < deadline, "the recording never showed in the console"
            await asyncio.sleep(0.5)
        files = (await http.get(f"/v1/apps/{biz_name}/recordings")).json()["recordings"]
        assert len(files) == 1 and files[0]["recordId"] == record_id, files
        file_id = files[0]["fileId"]
        row_css = f'#recordings tr[data-key="{file_id}"]'
        # Found by its record id (the seed's media id) too.
        await console.fill("recording-query", recordId=record_id)
        await console.submit("recording-query")
        await console.until(
            "the file by record id",
            lambda: (
                console.find(row_css) and console.find("#recording-query button[type=submit]")[0].is_enabled()
            ),
        )
        await console.press("Play", row_css)
        duration = await console.until(
            "the player's duration",
            lambda: console.script(
                "const v = document.getElementById('video'); return v && v.readyState >= 1 && v.duration"
            ),
        )
        assert duration > 1, duration
        seeked = await console.run(
            chromium.execute_async_script,
            """const [done] = arguments; const video = document.getElementById('video');
               video.addEventListener('seeked', () => done(video.currentTime), {once: true});
               video.currentTime = video.duration / 2;""",
        )
        assert abs(seeked - duration / 2) < 1, (seeked, duration)
        await console.shot("06-recordings")
        await console.press("Download", row_css)
        downloaded = await console.until(
            "the download",
            lambda: [
                path for path in (tmp_path / "downloads").glob("*") if not path.name.endswith(".crdownload")
            ],
        )
        assert downloaded[0].stat().st_size == files[0]["sizeBytes"]
        await console.press("Delete", row_css)
        await console.until("the empty listing", lambda: "No recordings match" in console.text("#page"))
        assert (await http.get(f"/v1/apps/{biz_name}/recordings")).json()["total"] == 0

        # Usage: once billing has metered the call, each tab's figures are the billing API's.
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                overview = (
                    await http.get(f"/v1/apps/{biz_name}/usage/overview", params={"range": "7d"})
                ).json()
                if (
                    overview["rooms"] >= 1
                    and sum(overview["callMs"].values()) > 0
                    and overview["onlineMs"] > 0
                ):
                    break
                await asyncio.sleep(0.5)
        for tab in ("call", "online", "rooms", "users"):

            async def figures_match(tab: str = tab) -> bool:
                await console.open("usage")
                await console.run(lambda: console.find(f'#usage-tabs [data-tab="{tab}"]')[0].click())
                await console.until(f"the {tab} chart", lambda: console.find("#usage-chart canvas"))
                shown = await console.run(
                    console.script,
                    "return [...document.querySelectorAll('#usage-figures .figure')]"
                    ".map(f => [f.dataset.key, Number(f.dataset.value)])",
                )
                answer = (
                    await http.get(f"/v1/apps/{biz_name}/usage/overview", params={"range": "7d"})
                ).json()
                return bool(shown) and all(value_at(answer, key) == value for key, value in shown)

            deadline = time.monotonic() + TIMEOUT_S
            while not await figures_match():
                assert time.monotonic() < deadline, f"the {tab} figures never matched the billing API"
                await asyncio.sleep(0.5)
            assert await console.run(console.find, "#usage-detail tbody tr")
            await console.shot(f"07-usage-{tab}")
        await console.run(chromium.set_window_size, 390, 844)
        await console.open("usage")
        await console.until("the chart", lambda: console.find("#usage-chart canvas"))
        assert await console.run(console.script, "return document.body.scrollWidth <= window.innerWidth")
        await console.shot("08-usage-phone")
        await console.run(chromium.set_window_size, 1280, 900)

        # Webhooks and billing read their services.
        await console.open("webhooks")
        await console.press("Reveal secret")
        assert (await console.until("the secret", lambda: console.text("#webhook-secret"))).startswith(
            "whsec_"
        )
        await console.shot("09-webhooks")
        await console.open("billing")
        assert await console.run(console.find, "#price-plan")
        await console.fill("account-mode", mode="prepaid", unit="minutes")
        await console.submit("account-mode")
        await console.until("the prepaid account", lambda: "prepaid in minutes" in console.text("#account"))
        assert (await http.get(f"/v1/apps/{biz_name}/account")).json()["mode"] == "prepaid"
        await console.shot("10-billing")

        # Deleting the app leaves the empty state again.
        await console.open("apps")
        await console.press("Delete app")
        await console.until("the app gone", lambda: "No apps yet" in console.text("#page"))
        assert (await http.get(f"/v1/apps/{biz_name}")).status_code == 404

    await console.collect_requests()
    assert any(url.startswith(f"{base}/v1/apps") for url in console.requested), console.requested
    assert not off_machine(console.requested), off_machine(console.requested)


def value_at(answer: dict[str, Any], key: str) -> Any:
    """`answer`'s value at a dotted key (callMs.720P)."""
    value: Any = answer
    for part in key.split("."):
        value = value[part]
    return value


async def test_with_an_operator_token_the_console_asks_for_it(chromium: WebDriver, tmp_path: Path) -> None:
    token = "console-test-token"
    (tmp_path / "platform").mkdir()
    async with start_platform(
        tmp_path / "platform",
        ServiceName.LICENCE,
        ServiceName.GATEWAY,
        settings={"gateway": {"operator_token": token}},
    ) as platform:
        console = Console(chromium, platform.http_url, tmp_path)
        await console.run(chromium.get, f"{platform.http_url}/console#apps")
        await console.until("the sign-in form", lambda: console.find("#login"))
        await console.fill("login", token="wrong")
        await console.submit("login")
        await console.until("the refusal", lambda: "refused" in console.text("#page"))
        await console.fill("login", token=token)
        await console.submit("login")
        await console.until("the apps page", lambda: console.ready("apps") and not console.find("#login"))
        assert "No apps yet" in await console.run(console.text, "#page")
        await console.shot("11-signed-in")
        async with httpx.AsyncClient(base_url=platform.http_url) as http:
            assert (await http.get("/v1/apps")).status_code == 401
        await console.collect_requests()
        assert not off_machine(console.requested), off_machine(console.requested)
