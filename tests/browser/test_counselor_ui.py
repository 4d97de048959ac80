"""A counselor in a real browser: log in, book, watch the meeting link arrive, retry a failed meeting, meet a
conflict, cancel from the list. The worker, Redis, PostgreSQL and the provider sandbox are real; the page's
script talks to the API with the session cookie and the CSRF token."""

import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from sessions_app.models import Session, SessionStatus
from tests.browser.conftest import local_start, log_in
from tests.conftest import BOOK_URL, api_client_for, booking_body
from tests.factories import student_for
from tests.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_booking(browser, *, student, mentor, start, topic: str = "Resume review", keep_type: bool = False) -> None:
    if not keep_type:
        Select(browser.find_element(By.ID, "f-sessionType")).select_by_value("regular_mentoring")
    Select(browser.find_element(By.ID, "f-students")).select_by_value(str(student.id))
    Select(browser.find_element(By.ID, "f-mentor")).select_by_value(str(mentor.id))
    # A datetime-local field is typed into segment by segment in the browser's locale; set it like a picker does.
    browser.execute_script(
        "var f = document.getElementById('f-start'); f.value = arguments[0];"
        "f.dispatchEvent(new Event('input', {bubbles: true}));",
        start.strftime("%Y-%m-%dT%H:%M"),
    )
    topic_field = browser.find_element(By.ID, "f-topic")
    topic_field.clear()
    topic_field.send_keys(topic)


# Read in the page in one step: the script may replace an element between a lookup and a read of it.
def status_text(browser) -> str:
    return browser.execute_script('return document.getElementById("booking-status").innerText;')


def settled(read):
    """`read()`, again when the list replaced the element it was reading meanwhile."""
    for _ in range(5):
        try:
            return read()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return read()


def row(browser, session_id: str):
    rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-session-id="{session_id}"]')
    return rows[0] if rows else None


def badge_of(browser, session_id: str) -> str | None:
    return browser.execute_script(
        "const b = document.querySelector(`tr[data-session-id='${arguments[0]}'] .badge`);"
        "return b ? b.dataset.status : null;",
        session_id,
    )


def test_book_see_pending_then_the_meeting_link(page, people):
    # given a logged-in counselor on the booking page (the sandbox answers after 1 s)
    log_in(page, people["counselor"])
    # when they book a session
    start = local_start(hours=30)
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=start)
    page.find_element(By.ID, "book-submit").click()
    # then they are told the meeting link is being created
    wait_for(lambda: "Creating the meeting link…" in status_text(page), timeout=10, what="the pending message")
    session = Session.objects.get()
    assert session.status in (SessionStatus.PENDING_MEETING, SessionStatus.SCHEDULED)
    assert session.scheduled_at == start
    # and then the link itself, clickable and copyable, once the worker has made the meeting
    link = wait_for(
        lambda: page.find_elements(By.CSS_SELECTOR, "#booking-status a.meeting-link"), timeout=20, what="the link"
    )[0]
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert link.get_attribute("href") == session.meeting.join_url
    assert page.find_elements(By.CSS_SELECTOR, "#booking-status button.copy-link")
    # and the session is listed with its badge and link, without reloading the page
    wait_for(lambda: badge_of(page, str(session.id)) == "SCHEDULED", timeout=10, what="the list's badge")
    assert session.meeting.join_url in settled(lambda: row(page, str(session.id)).text)


def test_failed_meeting_shows_the_reason_then_retry_brings_the_link(page, people, sandbox):
    # given a provider that fails every create
    sandbox.configure(latencyMs=0, failRate=1.0)
    log_in(page, people["counselor"])
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=local_start(hours=32))
    page.find_element(By.ID, "book-submit").click()
    # then, once the saga gave up, the counselor reads why and gets a Retry button
    wait_for(lambda: "The meeting could not be created" in status_text(page), timeout=30, what="the failure message")
    session = Session.objects.get()
    assert session.status == SessionStatus.MEETING_FAILED
    assert session.failure_reason and session.failure_reason in status_text(page)
    # when the provider recovers and the counselor presses Retry
    sandbox.configure(failRate=0.0, latencyMs=500)
    page.find_element(By.ID, "state-retry").click()
    # (the retry asks: the same time, or a new one)
    wait_for(lambda: page.find_element(By.ID, "retry-same").is_displayed(), timeout=5, what="the retry dialog")
    assert not page.find_element(By.ID, "reschedule-save").is_displayed()
    page.find_element(By.ID, "retry-same").click()
    # then the page waits for the link again, and shows it
    link = wait_for(
        lambda: page.find_elements(By.CSS_SELECTOR, "#booking-status a.meeting-link"), timeout=20, what="the link"
    )[0]
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert link.get_attribute("href") == session.meeting.join_url


def test_conflicting_booking_is_explained_inline_and_books_nothing(page, people):
    # given the mentor already booked from 10:00 to 11:00 (counselor's time) with another student
    start = local_start(hours=34)
    first = api_client_for(people["counselor"]).post(
        BOOK_URL, booking_body(student=people["other_student"], mentor=people["mentor"], start=start), format="json"
    )
    assert first.status_code == 201
    log_in(page, people["counselor"])
    # when the counselor books the same mentor half an hour later
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=start.replace(minute=30))
    page.find_element(By.ID, "book-submit").click()
    # then the form says who is busy when, in their words and their time zone
    error = wait_for(lambda: page.find_element(By.ID, "book-error").text, timeout=10, what="the conflict message")
    assert "Ana Garcia is already booked from" in error
    assert start.strftime("%H:%M") in error and "Asia/Shanghai" in error
    # and nothing was booked
    assert Session.objects.count() == 1
    assert not page.find_element(By.ID, "booking-status").is_displayed()


def test_cancel_from_the_list_changes_the_status_without_a_reload(page, people):
    # given a scheduled session
    booked = api_client_for(people["counselor"]).post(
        BOOK_URL,
        booking_body(student=people["student"], mentor=people["mentor"], start=local_start(hours=36)),
        format="json",
    )
    session_id = booked.json()["sessionId"]
    wait_for(
        lambda: Session.objects.filter(id=session_id, status=SessionStatus.SCHEDULED).exists(),
        timeout=20,
        what="the session to be scheduled",
    )
    log_in(page, people["counselor"])
    wait_for(lambda: badge_of(page, session_id) == "SCHEDULED", timeout=10, what="the scheduled row")
    page.execute_script("window.notReloaded = true;")
    # when the counselor cancels it from the list and confirms
    settled(lambda: row(page, session_id).find_element(By.CSS_SELECTOR, 'button[data-action="cancel"]').click())
    page.switch_to.alert.accept()
    # then its badge turns to Cancelled in place, its actions are gone, and the page was never reloaded
    wait_for(lambda: badge_of(page, session_id) == "CANCELLED", timeout=10, what="the cancelled badge")
    assert page.execute_script("return window.notReloaded === true;")
    assert not settled(lambda: row(page, session_id).find_elements(By.CSS_SELECTOR, 'button[data-action="cancel"]'))
    assert Session.objects.get(id=session_id).status == SessionStatus.CANCELLED


def test_a_slow_provider_is_announced_while_the_session_stays_listed(page, people, sandbox, settings):
    # given a provider much slower than the page's patience (30 s in production, 1 s here)
    settings.UI_MEETING_PATIENCE_SECONDS = 1
    sandbox.configure(latencyMs=1500)  # a token call and a create: about 3 s
    log_in(page, people["counselor"])
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=local_start(hours=38))
    page.find_element(By.ID, "book-submit").click()
    # then, past the patience, the counselor is told to come back later, and the session is in the list
    wait_for(
        lambda: "This is taking longer than usual — refresh later." in status_text(page),
        timeout=10,
        what="the slow message",
    )
    session = Session.objects.get()
    assert badge_of(page, str(session.id)) == "PENDING_MEETING"
    # and the meeting still arrives: the list keeps polling and shows the session once, now scheduled
    wait_for(lambda: badge_of(page, str(session.id)) == "SCHEDULED", timeout=20, what="the list to catch up")
    assert len(page.find_elements(By.CSS_SELECTOR, f'tr[data-session-id="{session.id}"]')) == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED


def test_a_student_without_units_is_named_inline_and_nothing_is_booked(page, people):
    # given a student of this counselor who has bought nothing
    broke = student_for(people["counselor"], first_name="Wang", last_name="Fang")
    log_in(page, people["counselor"])
    # when the counselor books a billable session for them
    fill_booking(page, student=broke, mentor=people["mentor"], start=local_start(hours=40))
    page.find_element(By.ID, "book-submit").click()
    # then the form says so, by name and type, and nothing is booked
    error = wait_for(lambda: page.find_element(By.ID, "book-error").text, timeout=10, what="the balance message")
    assert "Wang Fang has no Regular mentoring sessions left to book" in error
    assert not Session.objects.exists()


def test_a_class_is_booked_for_several_students(page, people):
    log_in(page, people["counselor"])
    Select(page.find_element(By.ID, "f-sessionType")).select_by_value("class_session")
    students = Select(page.find_element(By.ID, "f-students"))
    assert students.is_multiple
    # the duration follows the type's default until the counselor types one
    assert page.find_element(By.ID, "f-duration").get_attribute("value") == "90"
    fill_booking(page, student=people["student"], mentor=people["mentor"], start=local_start(hours=42), keep_type=True)
    students.select_by_value(str(people["other_student"].id))
    page.find_element(By.ID, "book-submit").click()
    wait_for(lambda: "Creating the meeting link…" in status_text(page), timeout=10, what="the pending message")
    session = Session.objects.get()
    assert session.session_type == "class_session" and session.duration_minutes == 90
    assert set(session.student_ids) == {people["student"].id, people["other_student"].id}
