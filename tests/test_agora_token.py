"""AccessToken2 RTC tokens against the vectors Agora publishes in AgoraIO/Tools
(DynamicKey/AgoraDynamicKey: python3/test/AccessToken2Test.py, nodejs/test/AccessToken2Test.js
and cpp/test/AccessToken2_test.cpp share these inputs and expected strings)."""

from __future__ import annotations

import base64
import hmac
import struct
import zlib
from hashlib import sha256

import pytest

from botrun.transports.agora.token import (
    PRIVILEGE_JOIN_CHANNEL,
    ROLE_PUBLISHER,
    ROLE_SUBSCRIBER,
    RtcService,
    build_access_token,
    build_rtc_token,
)

# Inputs of Agora's published test vectors.
APP_ID = "970CA35de60c44645bbae8a215061b33"
APP_CERT = "5CFd2fd1755d40ecb72977518be15d3b"
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
UID = 2882341273
ISSUE_TS = 1111111
EXPIRE = 600
SALT = 1

VECTOR_UID = (
    "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwM"
    "k4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj"
)
VECTOR_UID_0 = (
    "007eJxTYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwM"
    "k4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo="
)


@pytest.mark.parametrize(("uid", "expected"), [(UID, VECTOR_UID), (0, VECTOR_UID_0)])
def test_published_rtc_vectors(uid: int, expected: str) -> None:
    service = RtcService(CHANNEL, uid, {PRIVILEGE_JOIN_CHANNEL: EXPIRE})
    token = build_access_token(
        APP_ID, APP_CERT, [service], expire_s=EXPIRE, issue_ts=ISSUE_TS, salt=SALT
    )
    assert token == expected


def _decode(token: str) -> dict:
    """Unpack a token by the published layout (independent of the builder's code)."""
    raw = zlib.decompress(base64.b64decode(token[3:]))
    (n,) = struct.unpack_from("<H", raw)
    sig, msg = raw[2 : 2 + n], raw[2 + n :]
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (v,) = struct.unpack_from(fmt, msg, pos)
        pos += struct.calcsize(fmt)
        return v

    def take_str() -> bytes:
        nonlocal pos
        length = take("<H")
        s = msg[pos : pos + length]
        pos += length
        return s

    out: dict = {
        "app_id": take_str().decode(),
        "ts": take("<I"),
        "expire": take("<I"),
        "salt": take("<I"),
        "services": take("<H"),
    }
    out["type"] = take("<H")
    out["privileges"] = {take("<H"): take("<I") for _ in range(take("<H"))}
    out["channel"], out["uid"] = take_str().decode(), take_str().decode()
    assert pos == len(msg)
    out["sig"], out["msg"] = sig, msg
    return out


def test_publisher_token_grants_join_and_publish_with_the_expiry() -> None:
    token = build_rtc_token(APP_ID, APP_CERT, "room-1", 42, role=ROLE_PUBLISHER, expire_s=900)
    d = _decode(token)
    assert token.startswith("007")
    assert (d["app_id"], d["expire"], d["services"], d["type"]) == (APP_ID, 900, 1, 1)
    assert d["privileges"] == {1: 900, 2: 900, 3: 900, 4: 900}
    assert (d["channel"], d["uid"]) == ("room-1", "42")
    key = hmac.new(struct.pack("<I", d["ts"]), APP_CERT.encode(), sha256).digest()
    key = hmac.new(struct.pack("<I", d["salt"]), key, sha256).digest()
    assert hmac.compare_digest(hmac.new(key, d["msg"], sha256).digest(), d["sig"])


def test_subscriber_token_only_joins_and_salts_differ() -> None:
    a = build_rtc_token(APP_ID, APP_CERT, "room-1", 0, role=ROLE_SUBSCRIBER, expire_s=60)
    b = build_rtc_token(APP_ID, APP_CERT, "room-1", 0, role=ROLE_SUBSCRIBER, expire_s=60)
    assert _decode(a)["privileges"] == {1: 60}
    assert _decode(a)["uid"] == ""  # uid 0: any uid may use it
    assert a != b  # a fresh random salt each time


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_id": "xyz"}, "App ID"),
        ({"app_certificate": "g" * 32}, "App Certificate"),
        ({"uid": 2**32}, "uid"),
        ({"role": 3}, "role"),
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict, message: str) -> None:
    args = {"app_id": APP_ID, "app_certificate": APP_CERT, "channel": "c", "uid": 1, **kwargs}
    role = args.pop("role", ROLE_PUBLISHER)
    with pytest.raises(ValueError, match=message):
        build_rtc_token(**args, role=role)
