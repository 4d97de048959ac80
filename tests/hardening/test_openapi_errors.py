"""The OpenAPI document names every error answer of API.md that an operation can give, in the error shape.

Read off the document itself, so an operation added later is held to the same rules: every operation may
answer 401, 403, 404 and 413; one that reads a body or a query may answer 400; every POST (booking and the
session actions) may answer 429 with a Retry-After header.
"""

import pytest

SCHEMA_URL = "/api/schema/"
BOOK = "/api/counselor/sessions/book"
LIST = "/api/counselor/sessions"
RETRY = "/api/counselor/sessions/{session_id}/retry"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema(counselor_api) -> dict:
    response = counselor_api.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    found = [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert found
    return found


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _is_error_shape(schema: dict, response: dict) -> bool:
    body = _resolve(schema, response["content"]["application/json"]["schema"])
    error = _resolve(schema, body["properties"]["error"])
    return body.get("required") == ["error"] and set(error["properties"]) == {"code", "message", "details"}


def test_every_operation_documents_401_403_404_and_413_in_the_error_shape(schema):
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        # The providers' webhooks: nobody logs in (no 403) and no id is in the path (no 404).
        expected = ("401", "413") if path.startswith("/api/providers/") else ("401", "403", "404", "413")
        for status in expected:
            assert status in responses, (method, path, status)
            assert _is_error_shape(schema, responses[status]), (method, path, status)


def test_every_operation_that_reads_input_documents_400(schema):
    for method, path, operation in operations(schema):
        reads_input = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
        if reads_input:
            assert "400" in operation["responses"], (method, path)
            assert _is_error_shape(schema, operation["responses"]["400"]), (method, path)


def test_every_post_documents_429_with_its_retry_after_header(schema):
    posts = [(path, operation) for method, path, operation in operations(schema) if method == "post"]
    assert {BOOK, RETRY} <= {path for path, _ in posts}
    for path, operation in posts:
        throttled = operation["responses"].get("429")
        assert throttled is not None, path
        assert _is_error_shape(schema, throttled), path
        assert "THROTTLED" in throttled["description"]
        retry_after = throttled["headers"]["Retry-After"]
        assert retry_after["required"] is True and retry_after["schema"]["type"] == "integer", path


def test_every_session_action_documents_409_invalid_state(schema):
    for method, path, operation in operations(schema):
        if method == "post" and path.startswith("/api/counselor/sessions/{session_id}/"):
            assert "409" in operation["responses"], path
            assert "INVALID_STATE" in operation["responses"]["409"]["description"], path


def test_booking_documents_every_error_code_of_the_contract(schema):
    responses = schema["paths"][BOOK]["post"]["responses"]

    assert {"201", "400", "401", "403", "404", "409", "413", "422", "429"} <= set(responses)
    for code in ("SLOT_CONFLICT", "INSUFFICIENT_BALANCE", "IDEMPOTENCY_KEY_IN_USE"):
        assert code in responses["409"]["description"]
    assert "IDEMPOTENCY_KEY_REUSED" in responses["422"]["description"]
    assert "PAYLOAD_TOO_LARGE" in responses["413"]["description"]


def test_the_booking_body_admits_no_property_beyond_the_contracts(schema):
    body = schema["paths"][BOOK]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert _resolve(schema, body)["additionalProperties"] is False


def test_the_idempotency_key_is_documented_as_1_to_255_characters(schema):
    header = next(p for p in schema["paths"][BOOK]["post"]["parameters"] if p["name"] == "Idempotency-Key")

    assert header["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}


def test_the_list_is_documented_as_a_page_with_its_bounds(schema):
    listing = schema["paths"][LIST]["get"]

    page = _resolve(schema, listing["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    bounds = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert bounds["page"]["minimum"] == 1
    assert (bounds["pageSize"]["minimum"], bounds["pageSize"]["maximum"]) == (1, 100)
