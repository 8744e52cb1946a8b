"""A real browser for the web UI tests: Debian's chromium, driven by Selenium through
Debian's chromium-driver (both installed by scripts/test). Screenshots of the pages the
tests visit land in ``test-artifacts/ui/`` (gitignored), for a human to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
T = TypeVar("T")


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"none of {names} is installed: run scripts/test, which installs them")


def chrome(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A headless chromium with its own throw-away profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_binary("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    if width < 500:  # below what a headless window may be: emulate the phone's viewport
        metrics = {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


def wait(
    driver: webdriver.Chrome, until: Callable[[webdriver.Chrome], T], timeout: float = 15
) -> T:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(until)


def rendered_after(driver: webdriver.Chrome, before: str | None) -> bool:
    """Whether the page finished a render since ``before`` (the app stamps each one)."""
    now = driver.execute_script("return document.body.dataset.rendered || null")
    return now is not None and now != before


def stamp(driver: webdriver.Chrome) -> str | None:
    return driver.execute_script("return document.body.dataset.rendered || null")  # type: ignore[no-any-return]


def go(driver: webdriver.Chrome, url: str) -> None:
    """Navigate and wait for the app's render of that page."""
    before = stamp(driver) if driver.current_url.startswith(url.split("#")[0]) else None
    if driver.current_url == url:
        driver.refresh()  # the same URL again: no navigation would happen
        before = None
    driver.get(url)
    wait(driver, lambda d: rendered_after(d, before))


def texts(driver: webdriver.Chrome, css: str) -> list[str]:
    """The rendered text of every match, read in one script (no stale elements mid-render)."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)"
    return list(driver.execute_script(script, css))


def one(driver: webdriver.Chrome, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Severe browser console entries (script errors, CSP violations)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
