"""Headless Chromium for browser tests, on loopback only: Selenium drives Debian's /usr/bin/chromium through
/usr/bin/chromedriver, which `make install` installs (without them the tests fail rather than skip); and
the small HTTP servers that serve the tests' pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.webdriver import WebDriver
from starlette.types import ASGIApp

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

CHROMIUM_FLAGS = (
    "--headless",
    # The tests may run as root, where Chromium refuses its sandbox.
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Without it Chromium gathers no 127.0.0.1 candidate, the only address the relay listens on.
    "--allow-loopback-in-peer-connection",
    # Host candidates keep their address, never an mDNS .local name (which the relay's candidate filter
    # cannot check and Chromium would announce by multicast), even on a page without camera permission.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # The received audio plays, so Chromium decodes it as on a real page.
    "--autoplay-policy=no-user-gesture-required",
    # The machine reaches no network: Chromium's own services would only retry failed connections.
    "--disable-background-networking",
    # Names Chromium still looks up at start (update, sign-in and search hosts) fail at once, so the
    # browser sends no DNS query off the machine; the page is addressed by IP.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-gpu",
    # A test drives several tabs of one browser: those in the background keep their timers and media.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def start_chromium(user_data_dir: Path, *, script_timeout_s: float, log_network: bool = False) -> WebDriver:
    """Chromium with its own profile in `user_data_dir`; `log_network` keeps DevTools' performance log,
    where every request the browser makes shows (`requested_urls`), failed and blocked ones too."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, f"{', '.join(missing)} missing: `make install` installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    # Both paths given, so Selenium Manager never looks for (or downloads) a browser or driver.
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    if log_network:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_script_timeout(script_timeout_s)
    return driver


def requested_urls(driver: WebDriver) -> list[str]:
    """The URLs the browser asked for since the last call (`log_network` drivers only)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pytest keeps its own SIGINT handling.
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` served on a free port of 127.0.0.1 (a secure context, where pages may call getUserMedia):
    its base URL, `http://127.0.0.1:<port>`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _EmbeddedServer(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(10):
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
        assert server.started, "the page's HTTP server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
