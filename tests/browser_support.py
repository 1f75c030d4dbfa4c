"""Headless Chromium for tests: the Debian ``chromium`` driven by Selenium through the
Debian ``chromedriver`` (same build, so no version skew and nothing downloaded: Selenium
Manager is never asked for a driver since the service names one).

Chromium's fake microphone plays a WAV file (``--use-file-for-fake-audio-capture``), once
(``%noloop``), from the moment the page opens the microphone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from system_tools import require

FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
)


@contextmanager
def chromium(profile: Path, fake_mic: Path | None = None, deny_mic: bool = False) -> Iterator[Any]:
    """A headless Chromium (a Selenium WebDriver) with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = require("chromium")
    driver_exe = require("chromedriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in FLAGS:
        if deny_mic and flag == "--use-fake-ui-for-media-stream":
            continue
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    if fake_mic is not None:
        opts.add_argument(f"--use-file-for-fake-audio-capture={fake_mic}%noloop")
    if deny_mic:  # the user says no to the microphone prompt
        opts.add_experimental_option(
            "prefs", {"profile.default_content_setting_values.media_stream_mic": 2}
        )
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_exe))
    try:
        yield driver
    finally:
        driver.quit()


async def js(driver: Any, script: str, *args: Any) -> Any:
    """Run ``script`` in the page (off the event loop: Selenium blocks)."""
    return await asyncio.to_thread(driver.execute_script, script, *args)


async def wait_js(
    driver: Any, script: str, what: str, timeout: float = 30.0, check: Callable[[Any], bool] = bool
) -> Any:
    """Poll ``script`` (an expression returned by the page) until ``check`` accepts it."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await js(driver, f"return ({script});")
        if check(value):
            return value
        await asyncio.sleep(0.1)
    logs = await asyncio.to_thread(driver.get_log, "browser")
    raise AssertionError(f"page: no {what} within {timeout} s (last {value!r}); console: {logs}")
