"""Agora connection-state change reasons turned into messages a user can act on.

The Python SDK passes the native ``CONNECTION_CHANGED_REASON_TYPE`` as a bare int and
defines no enum for it, so the values (stable across Agora's SDKs) are listed here.
"""

from __future__ import annotations

JOIN_SUCCESS = 1
INTERRUPTED = 2
BANNED_BY_SERVER = 3
JOIN_FAILED = 4
LEAVE_CHANNEL = 5
INVALID_APP_ID = 6
INVALID_CHANNEL_NAME = 7
INVALID_TOKEN = 8
TOKEN_EXPIRED = 9
REJECTED_BY_SERVER = 10
KEEP_ALIVE_TIMEOUT = 14
LOST = 16
SAME_UID_LOGIN = 19
TOO_MANY_BROADCASTERS = 20

_MESSAGES: dict[int, str] = {
    BANNED_BY_SERVER: "the bot was removed from the channel (banned by the server)",
    JOIN_FAILED: "joining the channel failed (no connection to Agora for too long)",
    INVALID_APP_ID: "Agora rejected the App ID: check AGORA_APP_ID (Agora console, project)",
    INVALID_CHANNEL_NAME: "Agora rejected the channel name",
    INVALID_TOKEN: (
        "Agora rejected the token: if the project has an App Certificate, set "
        "AGORA_APP_CERTIFICATE to it; if it has none, unset AGORA_APP_CERTIFICATE"
    ),
    TOKEN_EXPIRED: "the Agora token expired",
    REJECTED_BY_SERVER: "Agora rejected the connection",
    SAME_UID_LOGIN: "another client joined the channel with the same uid (choose another --uid)",
    TOO_MANY_BROADCASTERS: "the channel has too many broadcasters",
}

#: Reasons after which the SDK will not recover by itself.
FATAL = frozenset(_MESSAGES)

_USER_LEFT = {0: "left", 1: "dropped", 2: "became audience"}


def describe(reason: int) -> str:
    """A one-line, actionable description of a connection change reason."""
    return _MESSAGES.get(reason, f"the connection to Agora failed (reason {reason})")


def user_left_reason(reason: int) -> str:
    """Why a remote user left, as a word for events and transcripts."""
    return _USER_LEFT.get(reason, f"reason {reason}")
