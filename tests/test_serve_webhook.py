"""Daily's pinless dial-in webhook rules: signatures, replay guard, payload parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from botrun.bots.serve import webhook
from botrun.bots.serve.webhook import WebhookRejected

KEY = b"dial-in secret bytes \x00\x01"
SECRET_B64 = base64.b64encode(KEY).decode()
NOW = 1_760_000_000.0
BODY = json.dumps(
    {"To": "+15550001111", "From": "+15552223333", "callId": "c-1", "callDomain": "d-1"}
).encode()


def headers(ts: str, body: bytes = BODY, key: bytes = KEY) -> dict[str, str]:
    return {webhook.SIGNATURE_HEADER: webhook.sign(key, ts, body), webhook.TIMESTAMP_HEADER: ts}


def test_signature_is_base64_hmac_sha256_of_timestamp_dot_body() -> None:
    # Independent computation of the documented scheme.
    expected = base64.b64encode(
        hmac.new(KEY, b"1760000000." + BODY, hashlib.sha256).digest()
    ).decode()
    assert webhook.sign(webhook.decode_secret(SECRET_B64), "1760000000", BODY) == expected


def test_good_signature_passes() -> None:
    webhook.verify(KEY, headers(str(int(NOW))), BODY, now=NOW + 10)


@pytest.mark.parametrize(
    "ts",
    [str(int(NOW * 1000)), datetime.fromtimestamp(NOW, UTC).isoformat().replace("+00:00", "Z")],
)
def test_millisecond_and_iso_timestamps_pass(ts: str) -> None:
    webhook.verify(KEY, headers(ts), BODY, now=NOW)


def test_forged_signature_is_refused() -> None:
    with pytest.raises(WebhookRejected, match="bad signature") as info:
        webhook.verify(KEY, headers(str(int(NOW)), key=b"another key"), BODY, now=NOW)
    assert info.value.status == 401


def test_tampered_body_is_refused() -> None:
    h = headers(str(int(NOW)))
    with pytest.raises(WebhookRejected, match="bad signature"):
        webhook.verify(KEY, h, BODY.replace(b"c-1", b"c-2"), now=NOW)


@pytest.mark.parametrize("offset", [301.0, -301.0, 3600.0])
def test_stale_or_future_timestamp_is_refused(offset: float) -> None:
    with pytest.raises(WebhookRejected, match="stale") as info:
        webhook.verify(KEY, headers(str(int(NOW))), BODY, now=NOW + offset)
    assert info.value.status == 401


@pytest.mark.parametrize(
    "h",
    [{}, {webhook.TIMESTAMP_HEADER: "1"}, {webhook.SIGNATURE_HEADER: "abc"}],
)
def test_missing_headers_are_refused(h: dict[str, str]) -> None:
    with pytest.raises(WebhookRejected, match="missing") as info:
        webhook.verify(KEY, h, BODY, now=NOW)
    assert info.value.status == 401


@pytest.mark.parametrize("ts", ["yesterday", "nan", "inf", "2025-01-01T00:00:00"])
def test_unreadable_timestamp_is_refused(ts: str) -> None:
    with pytest.raises(WebhookRejected, match="unreadable"):
        webhook.verify(KEY, {**headers(ts)}, BODY, now=NOW)


def test_decode_secret_rejects_bad_base64() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        webhook.decode_secret("not base64 !!")
    with pytest.raises(ValueError, match="empty"):
        webhook.decode_secret("")


def test_parse_call() -> None:
    body = json.dumps(
        {
            "To": "+1 555 000",
            "From": "+1 555 111",
            "callId": "id",
            "callDomain": "dom",
            "sipHeaders": {"X-Custom": "v"},
        }
    ).encode()
    call = webhook.parse_call(body)
    assert call == webhook.DialinCall(
        call_id="id",
        call_domain="dom",
        to="+1 555 000",
        from_="+1 555 111",
        sip_headers={"X-Custom": "v"},
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"callDomain": "d"}', "'callId' is missing"),
        (b'{"callId": "c", "callDomain": " "}', "'callDomain' is missing"),
        (b'{"callId": 5, "callDomain": "d"}', "'callId' must be a string"),
        (b'{"callId": "c", "callDomain": "d", "From": null}', "'From' must be a string"),
        (b'{"callId": "c", "callDomain": "d", "sipHeaders": [1]}', "'sipHeaders'"),
        (b'{"callId": "c", "callDomain": "d", "sipHeaders": {"a": 1}}', "'sipHeaders'"),
    ],
)
def test_malformed_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason) as info:
        webhook.parse_call(body)
    assert info.value.status == 400


def test_test_payload_detection() -> None:
    assert webhook.is_test_payload(b'{"Test": "test"}')
    assert webhook.is_test_payload(b'{"test": "test"}')
    assert not webhook.is_test_payload(BODY)
    assert not webhook.is_test_payload(b'{"Test": "x", "callId": "c"}')
    assert not webhook.is_test_payload(b"garbage")
