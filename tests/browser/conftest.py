"""Browser tests: Debian's headless Chromium driven by Selenium through Debian's chromedriver (nothing is
downloaded), against the real stack of tests/stack.py (Redis, the Procfile's sandbox, worker, notifier and beat)
and pytest-django's live server (a real HTTP server in a thread of this process, on the test database)."""

import os
import shutil
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts_app.models import User
from tests import stack as shared_stack
from tests.conftest import funded_student
from tests.factories import CounselorFactory, MentorFactory
from tests.stack import wait_for

# The shared stack's fixtures and report hook, found by name in this conftest (one stack for this package).
stack = shared_stack.stack
sandbox = shared_stack.sandbox
_dump_stack_logs_on_failure = shared_stack._dump_stack_logs_on_failure
_worker_idle_after_test = shared_stack._worker_idle_after_test
pytest_runtest_makereport = shared_stack.pytest_runtest_makereport

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
PASSWORD = "browser-test-pass-2026"
COUNSELOR_TIME_ZONE = "Asia/Shanghai"


@pytest.fixture(scope="package")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--lang=en-GB", "--disable-gpu"]:  # fmt: skip
        options.add_argument(argument)
    # The page speaks English unless the counselor switches: pin the browser's language too.
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-GB,en"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, live_server, sandbox):
    """The browser, logged out, pointed at the live server; the sandbox answers like a real provider (1 s)."""
    sandbox.configure(latencyMs=1000)
    browser.get(live_server.url + "/accounts/login/")
    browser.delete_all_cookies()
    browser.base_url = live_server.url
    yield browser


@pytest.fixture
def people(stack, transactional_db) -> dict:
    counselor = CounselorFactory(first_name="Grace", last_name="Hopper")
    counselor.set_password(PASSWORD)
    counselor.save(update_fields=["password"])
    counselor.profile.time_zone = COUNSELOR_TIME_ZONE
    counselor.profile.save(update_fields=["time_zone"])
    return {
        "counselor": counselor,
        "student": funded_student(counselor),
        "other_student": funded_student(counselor),
        "mentor": MentorFactory(first_name="Ana", last_name="Garcia"),
    }


def local_start(*, hours: float) -> datetime:
    """A whole hour in the future, in the counselor's time zone (as the form's field reads it)."""
    moment = datetime.now(ZoneInfo(COUNSELOR_TIME_ZONE)) + timedelta(hours=hours)
    return moment.replace(minute=0, second=0, microsecond=0)


def log_in(browser, user: User) -> None:
    from selenium.webdriver.common.by import By

    browser.get(browser.base_url + "/app/")
    browser.find_element(By.ID, "id_username").send_keys(user.username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(lambda: browser.find_elements(By.ID, "book-form"), timeout=10, what="the booking page after login")
