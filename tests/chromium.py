"""A headless Chromium for the tests that look at pages as people do (Debian's
chromium and chromium-driver; ``make test`` installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (make test installs them)")


def browser(tmp_path: Path, name: str = "chromium", size: str = "1280,1100") -> Any:
    """A browser of its own (profile ``tmp_path/name``), ``size`` wide and high."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-quic",
                 f"--user-data-dir={tmp_path / name}", f"--window-size={size}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def sign_in(driver: Any, token: str, then: str, name: str | None = None,
            timeout: float = 60) -> Any:
    """Fill in the sign-in form a page shows first, submit it, and wait for the element
    ``then`` of the page behind it (the click returns before that page has loaded)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    if name is not None:
        driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.ID, then)))
