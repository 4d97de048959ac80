"""What the booking page gives its script to find free times: the availability URL of API.md, the place the
free starts appear, and their words in Chinese. The browser tests (tests/browser/test_free_times_ui.py) drive
the script against the real API."""

import json

import pytest

from tests.pages.test_pages import json_script, logged_in

pytestmark = pytest.mark.django_db


def test_booking_page_has_a_place_for_free_times_and_the_url_to_ask(counselor):
    page = logged_in(counselor).get("/app/")
    assert page.status_code == 200
    assert json_script(page, "ui-config")["availabilityUrl"] == "/api/counselor/availability"
    # hidden until the script has people, a duration and a day to ask about
    assert 'id="free-times" aria-live="polite" hidden' in page.text


def test_free_time_words_are_in_the_chinese_script_catalog(counselor):
    client = logged_in(counselor)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/app/"})
    catalog = client.get("/jsi18n/").content.decode()
    for words in ["正在查找空闲时间…", "这一天没有所有人都有空的时间", "试试 %(time)s", "已查看导师的日历"]:
        assert words in catalog or json.dumps(words)[1:-1] in catalog, words
