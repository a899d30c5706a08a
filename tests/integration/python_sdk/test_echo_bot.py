"""The echo bot example (a separate process, through parley_sdk's Engine and Session) hears a browser:
headless Chromium joins the bot's room, publishes its fake microphone (a beep every second) and plays
what the bot sends back; the bot receives the browser's audio as PCM, and the browser measures the
energy of what it plays (`totalAudioEnergy` of its inbound audio, getStats)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from parley_sdk.operator import App, Operator
from selenium.webdriver.chrome.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tests.integration.chromium import serving, start_chromium
from tests.integration.python_sdk.conftest import EXAMPLES, PYTHON
from tests.testing import Platform

pytestmark = pytest.mark.integration

PAGE = Path(__file__).parent / "page"
SCRIPT_TIMEOUT_S = 40.0
# totalAudioEnergy sums (sample amplitude 0-1)² x duration: a second of silence adds 0; Chromium's beep,
# echoed, adds far more than this within a few seconds.
ECHO_HEARD = 0.001
# RMS of 16-bit PCM: the fake microphone's beep is thousands; decoded silence is near 0.
BEEP_HEARD = 300.0


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), script_timeout_s=SCRIPT_TIMEOUT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
async def page_url() -> AsyncIterator[str]:
    async with serving(Starlette(routes=[Mount("/", StaticFiles(directory=PAGE, html=True))])) as url:
        yield url + "/"


async def in_page(driver: WebDriver, function: str, *args: Any) -> Any:
    script = (
        "const done = arguments[arguments.length - 1];"
        f"parley.{function}(...Array.from(arguments).slice(0, -1))"
        ".then((value) => done({value}), (error) => done({error: String(error)}));"
    )
    result = await asyncio.to_thread(driver.execute_async_script, script, *args)
    assert "error" not in result, f"parley.{function}: {result['error']}"
    return result.get("value")


async def test_the_echo_bot_hears_a_browser_and_the_browser_hears_it_back(
    platform: Platform, operator: Operator, app: App, chromium: WebDriver, page_url: str
) -> None:
    bot = await operator.sign_in(app, f"bot_{uuid.uuid4().hex[:8]}")
    caller = await operator.sign_in(app, f"caller_{uuid.uuid4().hex[:8]}")
    process = await asyncio.create_subprocess_exec(
        PYTHON, str(EXAMPLES / "echo_bot.py"), "--url", platform.ws_url, "--uid", bot.uid, "--sign", bot.sign,
        "--biz-name", bot.biz_name, "--sub-biz", bot.sub_biz, "--workspace-id", bot.workspace_id,
        "--seconds", "60", "--ice-host", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        room = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        await asyncio.to_thread(chromium.get, page_url)
        credentials = {
            "uid": caller.uid, "sign": caller.sign, "biz_name": caller.biz_name,
            "sub_biz": caller.sub_biz, "workspace_id": caller.workspace_id,
        }  # fmt: skip
        await in_page(chromium, "start", platform.ws_url, credentials, room["room_id"], room["rtoken"])
        async with asyncio.timeout(30):
            while (heard := await in_page(chromium, "heard"))["energy"] < ECHO_HEARD:
                await asyncio.sleep(0.5)
        assert heard["seconds"] > 0
        await in_page(chromium, "stop")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["heard_bytes"] > 0 and result["loudest"] > BEEP_HEARD, result
