"""The booking request answers from the database alone: no provider, broker or any other socket is touched."""

import socket

import pytest

from tests.conftest import BOOK_URL, booking_body


def test_booking_opens_no_network_connection(counselor_api, mentor, student, monkeypatch):
    counselor_api.get("/api/counselor/sessions")  # the database connection is open before we start watching
    attempts: list = []

    def refuse(sock, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert response.status_code == 201
    assert attempts == []


@pytest.mark.parametrize("provider", ["feishu", "zoom"])
def test_booking_answers_even_when_every_provider_is_unreachable(counselor_api, mentor, student, settings, provider):
    settings.FEISHU_BASE_URL = settings.ZOOM_API_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, meetingProvider=provider), format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "PENDING_MEETING"
