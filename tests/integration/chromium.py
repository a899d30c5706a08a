"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium through /usr/bin/chromedriver
(`make install` installs both; without them the tests fail rather than skip), kept off every network
but loopback."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.webdriver import WebDriver

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
)


def start_chromium(user_data_dir: Path, *, script_timeout_s: float) -> WebDriver:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, f"{', '.join(missing)} missing: `make install` installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    # Both paths given, so Selenium Manager never looks for (or downloads) a browser or driver.
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_script_timeout(script_timeout_s)
    return driver
