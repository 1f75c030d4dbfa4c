"""Joining with the real daily-python offline: timeouts, Daily's error strings, secrets."""

from __future__ import annotations

import logging

import pytest
from daily_support import ROOM, RecordingEvents, make_transport
from helpers_cli import run_botrun

from botrun.core.errors import TransportError
from botrun.transports.daily import sdk
from botrun.transports.daily.messages import is_request_error, join_error_message

pytest.importorskip("daily")

TOKEN = "eyJhbGciOi.test-meeting-token.secret-part"
OFFLINE_ERROR = (
    "Connection(Api(RoomLookup(RoomInfoFetchFailed(Get(hyper_util::client::legacy::Error("
    'Connect, Custom { kind: Uncategorized, error: "failed to lookup address information: '
    'Name or service not known" }))))))'
)


async def test_join_timeout_is_a_clear_error_and_leave_does_not_block(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    t = make_transport(token=TOKEN, join_timeout_s=0.3)
    events = RecordingEvents()
    kept = len(sdk._kept)
    with pytest.raises(TransportError) as info:
        await t.join(events)
    message = str(info.value)
    assert message.startswith(f"timed out after 0.3 s joining {ROOM}")
    assert "--join-timeout-s" in message
    # Daily blocks leave() and release() until it gives up joining (~20 s offline): the
    # transport parks the client (and its audio source) instead of waiting.
    await t.leave()
    assert t._client is None and len(sdk._kept) == kept + 2
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (OFFLINE_ERROR, f"cannot reach Daily to join {ROOM}"),
        ("Connection(Api(RoomLookup(RoomNotFound)))", f"the room {ROOM} does not exist"),
        ('Join(Forbidden("meeting token is for another room"))', "Daily refused the bot"),
        ("Join(TokenExpired)", f"the room {ROOM} or its meeting token has expired"),
        ("something new", f"could not join {ROOM}: something new"),
    ],
)
def test_join_errors_become_messages_a_user_can_act_on(raw: str, start: str) -> None:
    message = join_error_message(raw, ROOM)
    assert message.startswith(start)
    assert "something new" in message or "[daily: " in message


def test_join_error_messages_redact_secrets_and_stay_short() -> None:
    from botrun.core.secrets import register_secret

    register_secret(TOKEN)
    message = join_error_message(f"Join(Forbidden(token {TOKEN})) " + "x" * 1000, ROOM)
    assert TOKEN not in message and len(message) < 500


def test_only_non_join_request_errors_are_survivable() -> None:
    assert is_request_error("Error handling startDialout: Dialout(CallState(NotInACall))")
    assert not is_request_error("Error handling join: Connection(Api(RoomLookup(...)))")
    assert not is_request_error("Signalling connection lost")


@pytest.mark.slow
def test_cli_join_unreachable_daily_ends_in_one_clear_line() -> None:
    """The real SDK gives up after ~19 s offline; the user sees why, never the token."""
    r = run_botrun(
        "daily",
        "--room",
        ROOM,
        "--agent-url",
        "ws://127.0.0.1:9/",
        env={"DAILY_MEETING_TOKEN": TOKEN},
        timeout=90,
    )
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"botrun: error: cannot reach Daily to join {ROOM}")
    # Daily's native JSON records went to the log, not onto the terminal (issue 12 item 8).
    assert '{"timestamp"' not in r.stderr
    assert "Traceback" not in r.stderr and TOKEN not in r.stderr + r.stdout
