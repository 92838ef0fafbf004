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
