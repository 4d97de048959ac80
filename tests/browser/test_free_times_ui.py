"""Finding a free time in a real browser: the chosen day's free starts appear as buttons once the people and the
duration are chosen, a booked time is not among them, one click fills the start; a conflict offers the next
free starts as buttons that fill the form (and the reschedule dialog, here in Chinese). The availability API,
the slots table, the worker and the provider sandbox are real."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from sessions_app.models import Session, SessionStatus
from tests.browser.conftest import COUNSELOR_TIME_ZONE, log_in
from tests.browser.test_counselor_ui import badge_of, fill_booking, settled, status_text
from tests.conftest import BOOK_URL, api_client_for, booking_body
from tests.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZONE = ZoneInfo(COUNSELOR_TIME_ZONE)
SET_FIELD = "var f = arguments[0]; f.value = arguments[1]; f.dispatchEvent(new Event('input', {bubbles: true}));"


def a_day(days_ahead: int) -> date:
    return (datetime.now(ZONE) + timedelta(days=days_ahead)).date()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall time of the counselor's time zone."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZONE)


def booked_for(people, *, student, start: datetime) -> str:
    response = api_client_for(people["counselor"]).post(
        BOOK_URL, booking_body(student=student, mentor=people["mentor"], start=start), format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["sessionId"]


# Read in one step: the script redraws the box when an answer comes.
def free_times(browser) -> dict:
    return browser.execute_script(
        "const box = document.getElementById('free-times');"
        "return {shown: !box.hidden, state: box.dataset.state || '', day: box.dataset.day || '',"
        " text: box.innerText,"
        " times: [...box.querySelectorAll('button.free-time')].map(b => b.textContent)};"
    )


def showing(browser, *, day: date, state: str) -> dict | None:
    seen = free_times(browser)
    return seen if seen["shown"] and seen["day"] == day.isoformat() and seen["state"] == state else None


def suggestion_buttons(browser, scope: str) -> list:
    return browser.find_elements(By.CSS_SELECTOR, f"{scope} [data-form-error] button.suggestion")


def test_free_times_of_the_chosen_day_leave_out_a_booked_time_and_one_click_books_it(page, people):
    # given the mentor booked from 10:00 to 11:00 (the counselor's time) on a day ahead, with another student
    day = a_day(2)
    busy = booked_for(people, student=people["other_student"], start=at(day, 10))
    log_in(page, people["counselor"])
    # when the counselor picks a day that has passed
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=at(a_day(-1), 9))
    # then they are told nobody is free then (and may still type any time)
    seen = wait_for(lambda: showing(page, day=a_day(-1), state="empty"), timeout=10, what="an empty past day")
    assert "No free time that day for everyone" in seen["text"]
    # when they pick the booked day instead
    page.execute_script(SET_FIELD, page.find_element(By.ID, "f-start"), at(day, 8).strftime("%Y-%m-%dT%H:%M"))
    # then that day's free starts are offered for the hour asked: none overlapping the mentor's 10:00-11:00,
    # and 11:00, right after it, is
    seen = wait_for(lambda: showing(page, day=day, state="ready"), timeout=10, what="the day's free times")
    assert "Free times on" in seen["text"]
    assert {"08:00", "09:00", "11:00", "11:15"} <= set(seen["times"])
    assert not {"09:15", "09:45", "10:00", "10:30", "10:45"} & set(seen["times"])
    # when they click 11:00
    page.find_element(By.CSS_SELECTOR, "#free-times button.free-time[data-start*='T11:00']").click()
    # then the start field holds it, and Book makes the session at that time
    assert page.find_element(By.ID, "f-start").get_attribute("value") == at(day, 11).strftime("%Y-%m-%dT%H:%M")
    page.find_element(By.ID, "book-submit").click()
    wait_for(lambda: "Creating the meeting link…" in status_text(page), timeout=10, what="the pending message")
    session = Session.objects.exclude(id=busy).get()
    assert session.scheduled_at == at(day, 11) and session.mentor_id == people["mentor"].id
    # and the time just booked is offered no more
    wait_for(
        lambda: (seen := showing(page, day=day, state="ready")) and "11:00" not in seen["times"],
        timeout=10,
        what="11:00 to leave the free times",
    )


# Holds the page's availability answer for one day until the test releases it (window.releaseHeld()); sets
# window.heldAnswered once the page's script has had that answer (a task after its promise chain settled).
HOLD_ANSWER_FOR_DAY = """
const day = arguments[0];
const realFetch = window.fetch;
window.releaseHeld = null;
window.heldAnswered = false;
window.fetch = function (url, options) {
  const answer = realFetch(url, options);
  if (!String(url).includes("/availability?") || !String(url).includes("from=" + day)) return answer;
  return new Promise(function (resolve) {
    window.releaseHeld = function () {
      answer.then(function (response) {
        const json = response.json.bind(response);
        response.json = function () {
          return json().then(function (data) {
            setTimeout(function () { window.heldAnswered = true; }, 0);
            return data;
          });
        };
        resolve(response);
      });
    };
  });
};
"""


def test_a_late_answer_for_a_day_no_longer_chosen_does_not_replace_the_current_one(page, people):
    first, second = a_day(2), a_day(3)
    log_in(page, people["counselor"])
    # given the answer for the first day chosen is slow
    page.execute_script(HOLD_ANSWER_FOR_DAY, first.isoformat())
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=at(first, 9))
    wait_for(lambda: page.execute_script("return !!window.releaseHeld;"), timeout=10, what="the first day's question")
    # when the counselor picks another day, and its answer is shown
    page.execute_script(SET_FIELD, page.find_element(By.ID, "f-start"), at(second, 9).strftime("%Y-%m-%dT%H:%M"))
    wait_for(lambda: showing(page, day=second, state="ready"), timeout=10, what="the second day's free times")
    shown = free_times(page)
    # and only then the first day's answer arrives
    page.execute_script("window.releaseHeld();")
    wait_for(lambda: page.execute_script("return window.heldAnswered;"), timeout=10, what="the late answer")
    # then the page still shows the day chosen last, as it was
    assert free_times(page) == shown


def test_a_conflict_offers_the_next_free_times_and_one_of_them_books(page, people):
    # given the mentor booked from 10:00 to 11:00 with another student
    day = a_day(3)
    busy = booked_for(people, student=people["other_student"], start=at(day, 10))
    log_in(page, people["counselor"])
    # when the counselor books the mentor at 10:30 all the same
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=at(day, 10, 30))
    page.find_element(By.ID, "book-submit").click()
    # then the conflict names who is busy and offers the next free starts, in the counselor's time zone
    buttons = wait_for(lambda: suggestion_buttons(page, "#book-form"), timeout=10, what="the suggestions")
    assert "Ana Garcia is already booked from" in page.find_element(By.ID, "book-error").text
    assert buttons[0].text == "Try 11:00"
    # when they click it, the form's start is filled, and nothing is booked until they press Book
    buttons[0].click()
    assert page.find_element(By.ID, "f-start").get_attribute("value") == at(day, 11).strftime("%Y-%m-%dT%H:%M")
    assert Session.objects.count() == 1
    page.find_element(By.ID, "book-submit").click()
    # then the session is booked at that time
    wait_for(lambda: "Creating the meeting link…" in status_text(page), timeout=10, what="the pending message")
    session = Session.objects.exclude(id=busy).get()
    assert session.scheduled_at == at(day, 11)


def test_a_reschedule_conflict_offers_free_times_in_chinese_that_fill_the_dialog(page, people):
    # given the counselor's scheduled session on one day, and the mentor busy 10:00-11:00 on another
    day = a_day(4)
    mine = booked_for(people, student=people["student"], start=at(a_day(5), 14))
    booked_for(people, student=people["other_student"], start=at(day, 10))
    wait_for(
        lambda: Session.objects.filter(id=mine, status=SessionStatus.SCHEDULED).exists(),
        timeout=30,
        what="the session to be scheduled",
    )
    # when the counselor, reading Chinese, moves it onto the mentor's busy hour
    log_in(page, people["counselor"])
    Select(page.find_element(By.ID, "language-select")).select_by_value("zh-hans")
    wait_for(lambda: page.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-hans", timeout=10)
    wait_for(lambda: badge_of(page, mine) == "SCHEDULED", timeout=10, what="the scheduled row")
    settled(
        lambda: page.find_element(By.CSS_SELECTOR, f"tr[data-session-id='{mine}'] button[data-action='reschedule']")
    ).click()
    start_field = page.find_element(By.ID, "r-start")
    page.execute_script(SET_FIELD, start_field, at(day, 10, 30).strftime("%Y-%m-%dT%H:%M"))
    page.find_element(By.ID, "reschedule-save").click()
    # then the dialog offers the next free start in Chinese
    buttons = wait_for(lambda: suggestion_buttons(page, "#reschedule-dialog"), timeout=10, what="the suggestions")
    assert buttons[0].text == "试试 11:00"
    assert "附近的空闲时间" in page.find_element(By.CSS_SELECTOR, "#reschedule-dialog [data-form-error]").text
    # and clicking it fills the dialog's date and time, without saving
    buttons[0].click()
    assert start_field.get_attribute("value") == at(day, 11).strftime("%Y-%m-%dT%H:%M")
    assert Session.objects.get(id=mine).scheduled_at == at(a_day(5), 14)
    # when they save, the session moves there
    page.find_element(By.ID, "reschedule-save").click()
    wait_for(lambda: Session.objects.get(id=mine).scheduled_at == at(day, 11), timeout=10, what="the session to move")
