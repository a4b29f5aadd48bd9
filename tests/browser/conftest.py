"""The console in a real browser: Debian's chromium, headless, driven through chromedriver
(Selenium), against the service under gunicorn on a committed world database.

People sign in as the console's users do locally: a one-time code from
public.issue_console_sign_in_code, opened as /console/#code=... (CONSOLE_LOCAL_SIGN_IN=on).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from app.webhooks.signing import signed_headers, workflow_key
from tests.conftest import world_database
from tests.perf.bench_api import RESULTS, free_port, start_service
from tests.realtime.conftest import as_url, service_env, stop_service
from tests.service_fixtures import CALLBACK_SECRET

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Where the screenshots go: beside the other results (a test run changes no tracked file), or,
# with SCREENSHOTS_TO_DOCS=1, over the ones the docs show (docs/console/), to refresh them.
SCREENSHOTS = Path(__file__).resolve().parents[2] / (
    "docs/console" if os.environ.get("SCREENSHOTS_TO_DOCS") == "1" else "tests/perf/results/screenshots")
EMAILS = {"operator": "operator@test.example", "manager": "manager@test.example",
          "client_user_a": "user-A@test.example", "client_user_b": "user-B@test.example"}


# Supabase Auth keeps each person's role and client in app_metadata (as the provisioning script
# writes it); the test world's client people have theirs only in their profiles.
APP_METADATA_FROM_PROFILES = """update auth.users u
                                   set raw_app_meta_data = jsonb_strip_nulls(jsonb_build_object(
                                         'role', p.role, 'user_type', p.user_type, 'client_id', p.client_id))
                                  from public.user_profiles p
                                 where p.id = u.id and coalesce(u.raw_app_meta_data, '{}') = '{}'"""


def browser_env(database_url: str, port: int, **extra: str) -> dict:
    return service_env(database_url, port, CONSOLE_LOCAL_SIGN_IN="on",
                       N8N_CALLBACK_SECRET="whsec_" + base64.b64encode(CALLBACK_SECRET).decode(), **extra)


class Console:
    """The running service, seen from the tests: sign-in links, signed callbacks, the database."""

    def __init__(self, base: str, database_url: str, process):
        self.base = base
        self.database_url = database_url
        self.process = process

    def sql(self, query: str, params=(), *, one: bool = False):
        with psycopg.connect(self.database_url, row_factory=dict_row, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            if cursor.description is None:
                return None
            return cursor.fetchone() if one else cursor.fetchall()

    def sign_in_link(self, person: str) -> str:
        code = self.sql("select public.issue_console_sign_in_code(%s, 300) as code", (EMAILS[person],), one=True)["code"]
        return f"{self.base}/console/#code={code}"

    def callback(self, workflow_id: str, event_type: str, **data) -> requests.Response:
        """A callback exactly as n8n sends it: signed with the workflow's key."""
        body = json.dumps({"type": event_type, "timestamp": "2026-12-03T12:00:00Z",
                           "data": {"workflowId": workflow_id, "executionId": f"exec-{workflow_id}", **data}}).encode()
        headers = {**signed_headers(workflow_key(CALLBACK_SECRET, workflow_id), f"evt-{uuid.uuid4()}", body),
                   "Content-Type": "application/json"}
        return requests.post(self.base + "/webhooks/n8n", data=body, headers=headers, timeout=10)


@pytest.fixture(scope="session")
def browser_database():
    for url in world_database("rexera_browser"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(APP_METADATA_FROM_PROFILES)
        yield as_url(url)


@pytest.fixture(scope="session")
def console(browser_database):
    process, base = start_service(browser_env(browser_database, free_port()), "wsgi:app", "browser-tests-server.log")
    try:
        yield Console(base, browser_database, process)
    finally:
        stop_service(process)


def new_driver(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium"
                    " chromium-driver; .ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--lang=en-US", "--disable-extensions",
                     "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser():
    drivers = []

    def open_browser(width: int = 1280, height: int = 900):
        driver = new_driver(width, height)
        drivers.append(driver)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def failure_artifacts(driver, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(RESULTS / f"browser-{name}.png"))
    (RESULTS / f"browser-{name}.html").write_text(driver.page_source)


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 (a stale element while the page changes)
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message} (last: {last!r})")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (rep_call), so a fixture can keep a failure's pages."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
