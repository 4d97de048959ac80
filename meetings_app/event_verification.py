"""Is this webhook really from Zoom or Feishu? (PROVIDERS.md "Webhooks", "Event subscription")

Pure functions over the raw request: no database, no settings (the callers pass the secrets), so the rules are
read and tested in one place. A request that fails a check raises `EventRefused` (401: nothing may change); a
request that passes but is not the JSON it should be raises `EventMalformed` (400).

- Zoom: `x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{x-zm-request-timestamp}:{raw body}")>`, compared in
  constant time, the timestamp (Unix seconds) within `max_age_seconds` of our clock either way. The
  `endpoint.url_validation` request is checked like any other: its answer is an HMAC of a string the caller
  chooses with the same key, so answering it unsigned would sign any event an attacker asked for.
- Feishu (v2 schema): `header.token` (or the URL check's `token`) must equal the Verification Token. With an
  Encrypt Key the body is `{"encrypt": base64}` (AES-256-CBC, key SHA-256(encrypt key), IV the first 16
  bytes, PKCS#7), and an event carries `X-Lark-Signature` = hex SHA-256 of timestamp + nonce + encrypt key +
  raw body, its timestamp within `max_age_seconds`. The URL check is answered on its token alone, as Feishu's
  own SDK does (echoing a challenge signs nothing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from booking_project.errors import ApplicationError


class EventRefused(ApplicationError):
    status_code = 401
    code = "UNAUTHENTICATED"
    message = "The event is not signed by the provider."


class EventMalformed(ApplicationError):
    status_code = 400
    code = "VALIDATION_ERROR"
    message = "The event is not valid JSON of the provider's event schema."


def json_object(raw_body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or EventMalformed."""
    try:
        value = json.loads(raw_body)
        # A lone surrogate escape ("\ud800") is not text: PostgreSQL would refuse to store the event.
        json.dumps(value, ensure_ascii=False).encode()
    except (ValueError, UnicodeError, RecursionError):
        raise EventMalformed() from None
    if not isinstance(value, dict):
        raise EventMalformed("The event must be a JSON object.")
    return value


def _timestamp_fresh(timestamp: str | None, *, now: float, max_age_seconds: float) -> None:
    try:
        seconds = int((timestamp or "").strip())
    except ValueError:
        raise EventRefused("The event carries no valid request timestamp.") from None
    if abs(now - seconds) > max_age_seconds:
        raise EventRefused("The event's timestamp is too far from now (a replay, or a clock far off).")


def _configured(secret: str, *, refuse_empty: bool, name: str) -> None:
    if refuse_empty and not secret:
        # Production without a secret: an event anyone could sign is never accepted.
        raise EventRefused(f"Events are refused: {name} is not configured.")


# --- Zoom ------------------------------------------------------------------------------------------------


def zoom_signature(secret: str, *, timestamp: str, raw_body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw_body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def zoom_request_verify(
    *,
    raw_body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: str,
    now: float,
    max_age_seconds: float,
    refuse_empty: bool,
) -> dict[str, Any]:
    """The Zoom event, once its signature and timestamp hold; EventRefused otherwise, EventMalformed for a
    signed body that is not a JSON object."""
    _configured(secret, refuse_empty=refuse_empty, name="ZOOM_WEBHOOK_SECRET_TOKEN")
    _timestamp_fresh(timestamp, now=now, max_age_seconds=max_age_seconds)
    expected = zoom_signature(secret, timestamp=timestamp.strip(), raw_body=raw_body)
    if not hmac.compare_digest(expected.encode(), (signature or "").strip().encode()):
        raise EventRefused("The x-zm-signature does not match the body.")
    return json_object(raw_body)


def zoom_url_validation_answer(payload: dict[str, Any], *, secret: str) -> dict[str, str]:
    body = payload.get("payload")
    plain_token = body.get("plainToken") if isinstance(body, dict) else None
    if not isinstance(plain_token, str) or not plain_token:
        raise EventMalformed("endpoint.url_validation carries no payload.plainToken.")
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# --- Feishu ----------------------------------------------------------------------------------------------


def feishu_signature(*, timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes) -> str:
    return hashlib.sha256(timestamp.encode() + nonce.encode() + encrypt_key.encode() + raw_body).hexdigest()


def feishu_decrypt(encrypted: str, *, encrypt_key: str) -> bytes:
    """The plain body of `{"encrypt": ...}`; EventRefused when our key does not open it."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise EventRefused("The encrypted event is not base64.") from None
    if len(data) < 32 or len(data) % 16:
        raise EventRefused("The encrypted event cannot be opened with our Encrypt Key.")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    padded = decryptor.update(data[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise EventRefused("The encrypted event cannot be opened with our Encrypt Key.") from None


def feishu_request_open(
    *,
    raw_body: bytes,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    verification_token: str,
    encrypt_key: str,
    now: float,
    max_age_seconds: float,
    refuse_empty: bool,
) -> dict[str, Any]:
    """The Feishu event (decrypted when an Encrypt Key is set), once its signature, timestamp and token hold."""
    _configured(verification_token, refuse_empty=refuse_empty, name="FEISHU_EVENT_VERIFICATION_TOKEN")
    body = json_object(raw_body)
    if encrypt_key:
        encrypted = body.get("encrypt")
        if not isinstance(encrypted, str):
            raise EventRefused("The event is not encrypted with our Encrypt Key.")
        body = json_object(feishu_decrypt(encrypted, encrypt_key=encrypt_key))
        if body.get("type") != "url_verification":
            _timestamp_fresh(timestamp, now=now, max_age_seconds=max_age_seconds)
            expected = feishu_signature(
                timestamp=timestamp.strip(), nonce=nonce or "", encrypt_key=encrypt_key, raw_body=raw_body
            )
            if not hmac.compare_digest(expected.encode(), (signature or "").strip().encode()):
                raise EventRefused("The X-Lark-Signature does not match the body.")
    header = body.get("header")
    token = body.get("token") if body.get("type") == "url_verification" else None
    if isinstance(header, dict):
        token = header.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), verification_token.encode()):
        raise EventRefused("The event's token is not our Verification Token.")
    return body
