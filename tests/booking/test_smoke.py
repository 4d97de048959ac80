from tests.conftest import BOOK_URL, booking_body


def test_counselor_books_a_session_and_gets_pending_meeting(counselor_api, student, mentor):
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "PENDING_MEETING"
