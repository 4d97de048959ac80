"""GET /api/schema/ serves the OpenAPI 3 document of the contract (API.md "Schema")."""

import pytest
import yaml
from django.core.management import call_command

SCHEMA_URL = "/api/schema/"
BOOK = "/api/counselor/sessions/book"
LIST = "/api/counselor/sessions"
DETAIL = "/api/counselor/sessions/{session_id}"


@pytest.fixture
def schema(counselor_api) -> dict:
    response = counselor_api.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_schema_is_served_as_yaml_by_default(counselor_api):
    response = counselor_api.get(SCHEMA_URL)

    assert response.status_code == 200
    # drf-spectacular's YAML media type; the JSON one is application/vnd.oai.openapi+json
    assert response["Content-Type"].split(";")[0] == "application/vnd.oai.openapi"
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")


def test_the_schema_is_an_openapi_3_document_with_the_three_session_paths(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    assert {BOOK, LIST, DETAIL} <= set(schema["paths"])


def test_the_yaml_and_json_documents_agree(counselor_api, schema):
    as_yaml = yaml.safe_load(counselor_api.get(SCHEMA_URL).content)

    assert as_yaml == schema


def test_booking_documents_every_answer_of_the_contract(schema):
    book = schema["paths"][BOOK]["post"]

    assert {"201", "400", "401", "403", "404", "409", "422"} <= set(book["responses"])


def test_booking_documents_its_body_and_the_idempotency_key_header(schema):
    book = schema["paths"][BOOK]["post"]

    body = book["requestBody"]["content"]["application/json"]["schema"]
    request = _resolve(schema, body)
    assert {"sessionType", "mentorId", "scheduledStartTime", "duration"} <= set(request["required"])
    assert {"studentId", "studentIds", "meetingProvider", "topic"} <= set(request["properties"])
    headers = [p for p in book.get("parameters", []) if p["in"] == "header"]
    assert "Idempotency-Key" in [p["name"] for p in headers]


def test_the_created_answer_has_the_sessions_shape_and_errors_the_error_shape(schema):
    book = schema["paths"][BOOK]["post"]

    created = _resolve(schema, book["responses"]["201"]["content"]["application/json"]["schema"])
    assert {
        "sessionId",
        "sessionType",
        "status",
        "studentId",
        "studentIds",
        "mentorId",
        "counselorId",
        "scheduledAt",
        "duration",
        "meetingProvider",
        "topic",
        "meetingId",
        "meetingNo",
        "meetingUrl",
    } <= set(created["properties"])
    error = _resolve(schema, book["responses"]["409"]["content"]["application/json"]["schema"])
    assert set(_resolve(schema, error["properties"]["error"])["properties"]) == {"code", "message", "details"}


def test_read_and_list_are_documented_as_get(schema):
    assert "get" in schema["paths"][LIST]
    assert "get" in schema["paths"][DETAIL]
    assert {"200", "401", "403", "404"} <= set(schema["paths"][DETAIL]["get"]["responses"])
    list_params = {p["name"] for p in schema["paths"][LIST]["get"]["parameters"]}
    assert {"status", "sessionType", "from", "to"} <= list_params


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = schema["components"]["schemas"][name]
    return node


def test_the_schema_generates_without_warnings_and_validates_against_the_openapi_spec(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning (an undocumentable view or field) into an error
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["openapi"].startswith("3.")
