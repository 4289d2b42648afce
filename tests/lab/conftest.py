"""Fixtures for the JupyterLab tests: a real `jupyter lab` with the batchai server extension and the
prebuilt panel (helpers/lab.py), and headless Chromium from Debian's `chromium` package, driven by
Playwright; one of each per test module."""

from __future__ import annotations

import pytest

from batchai_jupyter.client import Client
from helpers.lab import CHROMIUM_FLAGS, LAB_TOKEN, LabPage, LabServer
from helpers.service import kill_leftover_tasks
from helpers.tools import require_tool


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("lab"))
    server.start()
    yield server
    server.stop()
    kill_leftover_tasks(server.env["BATCHAI_HOME"])


@pytest.fixture(scope="module")
def lab_client(lab) -> Client:
    """The batchai REST client, talking to the service inside the Lab server."""
    return Client(lab.url, LAB_TOKEN)


@pytest.fixture(scope="module")
def browser():
    executable = require_tool("chromium", "install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def lab_page(lab, browser):
    context = browser.new_context(viewport={"width": 1500, "height": 950}, accept_downloads=True)
    page = LabPage(context.new_page(), lab)
    page.open()
    yield page
    context.close()
