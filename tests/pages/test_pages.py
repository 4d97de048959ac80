"""The counselor pages with Django's test client: who may see what, the first paint, the language switch, and
the API answering the pages' script (session cookie + CSRF). The browser tests (tests/browser) drive the
script itself."""

import json
import re
import uuid

import pytest
from django.test import Client

from accounts_app.selectors import mentors_list, students_of_counselor
from sessions_app.models import Session, SessionStatus
from sessions_app.pages import SESSION_TYPE_LABELS, STATUS_LABELS
from sessions_app.types import SESSION_TYPES
from tests.conftest import BOOK_URL, LIST_URL, api_client_for, assert_error, booking_body, funded_student
from tests.factories import CounselorFactory, MentorFactory, StaffFactory, future

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-2026"


def logged_in(user, *, enforce_csrf_checks: bool = False) -> Client:
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    # Through the login page, as a person logs in (django-axes counts logins there: it needs the request).
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, response.status_code
    return client


def book(counselor, student, mentor, **extra) -> dict:
    response = api_client_for(counselor).post(
        BOOK_URL, booking_body(student=student, mentor=mentor, **extra), format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def json_script(response, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.text, re.S)
    assert match, f"no {element_id} on the page"
    return json.loads(match.group(1))


def test_pages_ask_an_anonymous_visitor_to_log_in(student, mentor, counselor):
    # given a booked session
    session = book(counselor, student, mentor)
    # when someone not logged in opens the pages, then they are sent to the login page, which then sends them back
    for path in ["/app/", f"/app/sessions/{session['sessionId']}/"]:
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"
    assert Client().get("/").headers["Location"] == "/app/"
    login = Client().get("/accounts/login/?next=/app/")
    assert login.status_code == 200
    assert 'name="username"' in login.text and 'name="password"' in login.text


def test_login_with_the_right_password_lands_on_the_booking_page(counselor):
    counselor.set_password(PASSWORD)
    counselor.save(update_fields=["password"])
    client = Client()
    wrong = client.post("/accounts/login/", {"username": counselor.username, "password": "nope"})
    assert wrong.status_code == 200 and 'id="login-error"' in wrong.text
    right = client.post("/accounts/login/", {"username": counselor.username, "password": PASSWORD, "next": "/app/"})
    assert right.status_code == 302 and right["Location"] == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and 'id="book-form"' in page.text
    # and logging out (a POST) sends them back to the login page
    out = client.post("/accounts/logout/")
    assert out.status_code == 302 and out["Location"] == "/accounts/login/"
    assert client.get("/app/").status_code == 302


def test_booking_page_offers_own_students_and_mentors_and_lists_own_sessions(counselor, student, mentor):
    # given another counselor with a student and a session of their own
    other = CounselorFactory()
    others_student = funded_student(other)
    others_session = book(other, others_student, mentor, start=future(hours=50))
    mine = book(counselor, student, mentor)
    # when the counselor opens the booking page
    response = logged_in(counselor).get("/app/")
    # then the form offers their student and the mentor, never the other counselor's student
    assert response.status_code == 200
    assert f'<option value="{student.id}">' in response.text
    assert f'<option value="{mentor.id}">' in response.text
    assert str(others_student.id) not in response.text
    # and the list starts with their session only, with the names the script shows instead of ids
    listed = json_script(response, "initial-sessions")
    assert [s["sessionId"] for s in listed] == [mine["sessionId"]]
    assert others_session["sessionId"] not in response.text
    ui = json_script(response, "ui-config")
    assert ui["people"][str(mentor.id)] == (mentor.get_full_name() or mentor.username)
    assert ui["timeZone"] == "Asia/Shanghai"
    assert ui["sessionTypes"]["class_session"]["several"] is True


def test_booking_page_filters_by_status_and_type(counselor, student, mentor):
    # given a pending session and a cancelled class
    pending = book(counselor, student, mentor, start=future(hours=30))
    a_class = book(counselor, student, mentor, session_type="class_session", start=future(hours=40))
    Session.objects.filter(id=a_class["sessionId"]).update(status=SessionStatus.CANCELLED)
    client = logged_in(counselor)
    # when filtering, then only the matching sessions are listed and the filter stays selected
    by_status = client.get("/app/?status=PENDING_MEETING")
    assert [s["sessionId"] for s in json_script(by_status, "initial-sessions")] == [pending["sessionId"]]
    assert '<option value="PENDING_MEETING" selected>' in by_status.text
    by_type = client.get("/app/?type=class_session")
    assert [s["sessionId"] for s in json_script(by_type, "initial-sessions")] == [a_class["sessionId"]]
    # and a filter value that means nothing is ignored, not an error
    assert len(json_script(client.get("/app/?status=BOGUS&type=nope"), "initial-sessions")) == 2


def test_session_page_shows_the_session_and_another_counselors_is_not_found(counselor, student, mentor):
    # given a session of this counselor and one of another counselor
    mine = book(counselor, student, mentor, topic="Essay plan")
    other = CounselorFactory()
    theirs = book(other, funded_student(other), mentor, start=future(hours=60), topic="Secret plans")
    client = logged_in(counselor)
    # when opening their own session, then its facts are there, by name and in their time zone
    page = client.get(f"/app/sessions/{mine['sessionId']}/")
    assert page.status_code == 200
    assert "Essay plan" in page.text
    assert (mentor.get_full_name() or mentor.username) in page.text
    assert 'data-status="PENDING_MEETING"' in page.text
    assert "Asia/Shanghai" in page.text
    # when opening the other counselor's session or an unknown id, then it is 404 and shows nothing of it
    for session_id in [theirs["sessionId"], uuid.uuid4()]:
        response = client.get(f"/app/sessions/{session_id}/")
        assert response.status_code == 404
        assert "Secret plans" not in response.text
        assert "Session not found" in response.text


def test_pages_are_for_counselors_only(counselor, student, mentor):
    session = book(counselor, student, mentor)
    for person in [StaffFactory(), MentorFactory()]:
        client = logged_in(person)
        assert client.get("/app/").status_code == 403
        assert client.get(f"/app/sessions/{session['sessionId']}/").status_code == 403


def test_language_switch_turns_pages_and_script_words_into_chinese(counselor):
    client = logged_in(counselor)
    assert "Book a session" in client.get("/app/").text
    # when the counselor picks 简体中文 in the switcher
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/app/"})
    assert response.status_code == 302 and response["Location"] == "/app/"
    # then the page and the script's catalog speak Chinese
    page = client.get("/app/")
    assert '<html lang="zh-hans">' in page.text
    assert "预约课程" in page.text and "Book a session" not in page.text
    assert "常规辅导" in page.text  # a session type, by its Chinese name
    catalog = client.get("/jsi18n/").content.decode()
    assert "\\u6b63\\u5728\\u521b\\u5efa\\u4f1a\\u8bae\\u94fe\\u63a5" in catalog or "正在创建会议链接" in catalog
    assert json_script(page, "ui-config")["language"] == "zh-hans"
    # and back to English
    client.post("/i18n/setlang/", {"language": "en", "next": "/app/"})
    assert "Book a session" in client.get("/app/").text


def test_the_pages_script_books_with_the_session_cookie_and_csrf_token(counselor, student, mentor):
    client = logged_in(counselor, enforce_csrf_checks=True)
    page = client.get("/app/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    body = json.dumps(booking_body(student=student, mentor=mentor))
    # without the CSRF token a cookie-authenticated write is refused in the contract's shape, and books nothing
    refused = client.post(BOOK_URL, body, content_type="application/json")
    assert_error(refused, 403, "FORBIDDEN")
    assert not Session.objects.exists()
    # with it, the booking is made
    booked = client.post(BOOK_URL, body, content_type="application/json", headers={"X-CSRFToken": token})
    assert booked.status_code == 201, booked.content
    assert client.get(LIST_URL).json()["count"] == 1
    # and without any credentials the API still answers 401, not 403
    assert_error(Client().get(LIST_URL), 401, "UNAUTHENTICATED")
    assert_error(Client().post(BOOK_URL, body, content_type="application/json"), 401, "UNAUTHENTICATED")


def test_selectors_offer_a_counselor_their_own_active_students_and_every_active_mentor(counselor, mentor):
    own = funded_student(counselor)
    funded_student(CounselorFactory())
    gone = MentorFactory(is_active=False)
    assert students_of_counselor(counselor=counselor) == [own]
    assert mentor in mentors_list() and gone not in mentors_list()


def test_every_session_type_and_status_has_words_in_the_ui():
    assert set(SESSION_TYPE_LABELS) == set(SESSION_TYPES)
    assert set(STATUS_LABELS) == set(SessionStatus.values)
