"""Agora AccessToken2 ("007") RTC tokens, built from the App ID and App Certificate.

Why our own builder: Agora publishes the algorithm only as sample code (AgoraIO/Tools), not as
a maintained package, and it is small. The format, as documented there:

* signing key = HMAC-SHA256(key=uint32le(salt), msg=HMAC-SHA256(key=uint32le(issue_ts),
  msg=certificate))
* message = string(app_id) ‖ uint32(issue_ts) ‖ uint32(expire) ‖ uint32(salt) ‖
  uint16(service count) ‖ services, where the RTC service is uint16(type=1) ‖
  map<uint16 privilege, uint32 expire> (sorted by privilege) ‖ string(channel) ‖ string(uid)
  (uid 0 is the empty string: "any uid")
* token = "007" + base64(zlib(string(HMAC-SHA256(signing key, message)) ‖ message))

Integers are little-endian; a string is uint16 length + bytes. Expiry values are seconds
*relative* to ``issue_ts``. Tests check the output against Agora's published vectors.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
import zlib
from dataclasses import dataclass, field
from hashlib import sha256

VERSION = "007"
SERVICE_RTC = 1

PRIVILEGE_JOIN_CHANNEL = 1
PRIVILEGE_PUBLISH_AUDIO = 2
PRIVILEGE_PUBLISH_VIDEO = 3
PRIVILEGE_PUBLISH_DATA = 4

ROLE_PUBLISHER = 1
ROLE_SUBSCRIBER = 2

_MAX_UINT32 = 2**32 - 1


def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _string(value: bytes) -> bytes:
    return _u16(len(value)) + value


def is_hex32(value: str) -> bool:
    """True for a 32-character hexadecimal string (the shape of App IDs and certificates)."""
    if len(value) != 32:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RtcService:
    """The RTC part of a token: channel, uid (0 = any) and privilege expiries."""

    channel: str
    uid: int = 0
    privileges: dict[int, int] = field(default_factory=dict)

    def pack(self) -> bytes:
        uid = b"" if self.uid == 0 else str(self.uid).encode()
        privs = sorted(self.privileges.items())
        packed_privs = _u16(len(privs)) + b"".join(_u16(k) + _u32(v) for k, v in privs)
        return _u16(SERVICE_RTC) + packed_privs + _string(self.channel.encode()) + _string(uid)


def build_access_token(
    app_id: str,
    app_certificate: str,
    services: list[RtcService],
    *,
    expire_s: int,
    issue_ts: int | None = None,
    salt: int | None = None,
) -> str:
    """Sign ``services`` into an AccessToken2 string.

    ``issue_ts`` (unix seconds) and ``salt`` default to now and a random 1..99999999; tests
    pin them to reproduce published vectors."""
    if not is_hex32(app_id):
        raise ValueError("the App ID must be 32 hexadecimal characters")
    if not is_hex32(app_certificate):
        raise ValueError("the App Certificate must be 32 hexadecimal characters")
    if not services:
        raise ValueError("a token needs at least one service")
    ts = int(time.time()) if issue_ts is None else issue_ts
    salt_value = secrets.SystemRandom().randint(1, 99_999_999) if salt is None else salt
    if not (0 <= expire_s <= _MAX_UINT32 and 0 <= ts <= _MAX_UINT32):
        raise ValueError("expiry and issue time must fit in 32 bits")

    key = hmac.new(_u32(ts), app_certificate.encode(), sha256).digest()
    key = hmac.new(_u32(salt_value), key, sha256).digest()
    message = (
        _string(app_id.encode())
        + _u32(ts)
        + _u32(expire_s)
        + _u32(salt_value)
        + _u16(len(services))
        + b"".join(s.pack() for s in services)
    )
    signature = hmac.new(key, message, sha256).digest()
    payload = zlib.compress(_string(signature) + message)
    return VERSION + base64.b64encode(payload).decode("ascii")


def build_rtc_token(
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int,
    *,
    role: int = ROLE_PUBLISHER,
    expire_s: int = 3600,
    issue_ts: int | None = None,
    salt: int | None = None,
) -> str:
    """An RTC token for ``uid`` (0 = any uid) in ``channel``, valid ``expire_s`` seconds.

    A publisher may join and publish audio, video and data; a subscriber may only join.
    Every privilege expires with the token, as Agora recommends."""
    if not 0 <= uid <= _MAX_UINT32:
        raise ValueError("uid must be between 0 and 2**32-1")
    if role not in (ROLE_PUBLISHER, ROLE_SUBSCRIBER):
        raise ValueError("role must be ROLE_PUBLISHER or ROLE_SUBSCRIBER")
    privileges = {PRIVILEGE_JOIN_CHANNEL: expire_s}
    if role == ROLE_PUBLISHER:
        for priv in (PRIVILEGE_PUBLISH_AUDIO, PRIVILEGE_PUBLISH_VIDEO, PRIVILEGE_PUBLISH_DATA):
            privileges[priv] = expire_s
    service = RtcService(channel, uid, privileges)
    return build_access_token(
        app_id, app_certificate, [service], expire_s=expire_s, issue_ts=issue_ts, salt=salt
    )
