"""Phone calls on the bot side: dial-in forwarding against a real local fake of Daily's REST
API, and dial-out retries through the real (offline) daily-python client."""

from __future__ import annotations

import asyncio

import pytest
from daily_support import RecordingEvents, make_transport, on_thread, participant
from daily_support import wait_for as wait_until
from fake_daily_api import API_KEY, FakeDailyApi

from botrun.core.errors import UsageError
from botrun.transports.daily.dialin import DialOut, PinlessForwarder, dialout_settings
from botrun.transports.daily.rest import DailyRest

pytest.importorskip("daily")

SIP = "sip:abc123@botrun-test.sip.daily.co"


@pytest.fixture
async def api():
    async with FakeDailyApi() as fake:
        yield fake


def dialin_transport(api: FakeDailyApi, **kw):
    kw.setdefault("dialin_attempts", 2)
    return make_transport(
        api_key=API_KEY,
        api_url=api.base_url,
        dialin_call_id="call-1",
        dialin_call_domain="domain-1",
        rest_backoff_s=0.01,
        dialin_backoff_s=0.01,
        **kw,
    )


async def test_dialin_ready_twice_forwards_the_call_exactly_once(api) -> None:
    t = dialin_transport(api)
    events = RecordingEvents()
    t.prepare(events)
    try:
        on_thread(t._handler.on_dialin_ready, SIP)
        on_thread(t._handler.on_dialin_ready, "sip:second@botrun-test.sip.daily.co")
        await wait_until(lambda: t.forwarder is not None and t.forwarder.task is not None)
        await t.forwarder.task
        await asyncio.sleep(0.05)  # let a (wrong) second forward show up if there were one
        assert api.pinless_updates == [
            {"callId": "call-1", "callDomain": "domain-1", "sipUri": SIP}
        ]
        assert api.calls("POST", "/dialin/pinlessCallUpdate")[0].authorization == (
            f"Bearer {API_KEY}"
        )
        assert t.forwarder.forwarded and events.of("ended") == []

        # The caller joins (a SIP participant is a participant like any other) and hangs up.
        caller = participant("+15551234567")
        on_thread(t._handler.on_dialin_connected, {"sessionId": "s1", "sipFrom": "+1555"})
        on_thread(t._handler.on_participant_joined, caller)
        on_thread(t._handler.on_dialin_stopped, {"sessionId": "s1"})
        on_thread(t._handler.on_participant_left, caller, "leftCall")
        await wait_until(lambda: events.of("left") and events.of("ended"))
        assert events.of("joined") == [("joined", caller["id"], "+15551234567")]
        assert events.of("ended")[0] == ("ended", "the caller hung up", None)
    finally:
        await t.leave()


async def test_dialin_server_errors_are_retried_then_succeed(api) -> None:
    api.fail("POST", "/dialin/pinlessCallUpdate", 503, times=4)  # a whole round (1 + 3)
    t = dialin_transport(api)
    events = RecordingEvents()
    t.prepare(events)
    try:
        on_thread(t._handler.on_dialin_ready, SIP)
        await wait_until(lambda: t.forwarder.task is not None)
        await t.forwarder.task
        assert t.forwarder.forwarded and t.forwarder.calls == 2
        assert len(api.calls("POST", "/dialin/pinlessCallUpdate")) == 5
        assert len(api.pinless_updates) == 1 and events.of("ended") == []
    finally:
        await t.leave()


async def test_dialin_final_failure_is_the_bots_error(api) -> None:
    api.fail(
        "POST",
        "/dialin/pinlessCallUpdate",
        400,
        {"error": "invalid-request-error", "info": "callId not found"},
    )
    t = dialin_transport(api)
    events = RecordingEvents()
    t.prepare(events)
    try:
        on_thread(t._handler.on_dialin_ready, SIP)
        await wait_until(lambda: events.of("ended"))
        ((_, reason, error),) = events.of("ended")
        assert reason == "error"
        assert error.startswith("could not forward the phone call into the room")
        assert "callId not found" in error and API_KEY not in error
        assert len(api.calls("POST", "/dialin/pinlessCallUpdate")) == 1  # a 400 is final
    finally:
        await t.leave()


async def test_dialin_error_event_and_last_caller_leaving_end_the_call(api) -> None:
    t = dialin_transport(api)
    events = RecordingEvents()
    t.prepare(events)
    try:
        on_thread(t._handler.on_dialin_error, {"errorMsg": "SIP 486 busy"})
        caller = participant("+15551234567")
        on_thread(t._handler.on_participant_joined, caller)
        on_thread(t._handler.on_participant_left, caller, "leftCall")
        await wait_until(lambda: len(events.of("ended")) == 2)
        assert events.of("ended") == [
            ("ended", "error", "dial-in failed: SIP 486 busy"),
            ("ended", "the caller hung up", None),
        ]
    finally:
        await t.leave()


def test_dialin_needs_both_call_fields_and_an_api_key() -> None:
    with pytest.raises(UsageError, match="--dialin-call-domain"):
        make_transport(api_key=API_KEY, dialin_call_id="c")
    with pytest.raises(UsageError, match="DAILY_API_KEY"):
        make_transport(dialin_call_id="c", dialin_call_domain="d")


async def test_token_is_minted_for_the_room_when_an_api_key_is_set(api) -> None:
    async with DailyRest(API_KEY, base_url=api.base_url) as rest:
        room = await rest.create_room(exp_s=600)
    t = make_transport(
        api_key=API_KEY,
        api_url=api.base_url,
        room=room.url,
        room_name=room.name,
        bot_name="Concierge",
    )
    t.prepare(RecordingEvents())
    try:
        token = await t._meeting_token()
        assert api.tokens[token]["room_name"] == room.name
        assert api.tokens[token]["is_owner"] is True
        assert api.tokens[token]["user_name"] == "Concierge"
    finally:
        await t.leave()


async def test_token_minting_failure_names_the_room(api) -> None:
    from botrun.core.errors import TransportError

    t = make_transport(api_key=API_KEY, api_url=api.base_url, rest_backoff_s=0.01)
    t.prepare(RecordingEvents())
    try:
        with pytest.raises(TransportError, match="could not get a meeting token for room"):
            await t._meeting_token()  # the fake has no such room
    finally:
        await t.leave()


# ---------------------------------------------------------------------------- dial-out
async def test_dialout_through_the_real_sdk_retries_then_fails_clearly() -> None:
    """Offline the real client answers start_dialout with NotInACall (completion error and
    on_error): each attempt fails once, is retried, and the last failure ends the call."""
    t = make_transport(dial_out_retries=2, dialout_backoff_s=0.01)
    events = RecordingEvents()
    t.prepare(events)
    t._joined = True  # start_dialout is only made once joined
    try:
        d = t.start_dial_out("+1 (415) 555-0123")
        assert d.settings == {"phoneNumber": "+14155550123"}
        await wait_until(lambda: events.of("ended"))
        ((_, reason, error),) = events.of("ended")
        assert reason == "error"
        assert error.startswith("dial-out failed after 3 attempt(s)") and "NotInACall" in error
        assert d.attempts == 3
    finally:
        await t.leave()


async def test_dialout_error_events_retry_until_answered() -> None:
    starts: list[dict[str, str]] = []
    failures: list[str] = []
    d = DialOut(
        "sip:agent@example.com",
        lambda s, done: starts.append(s),
        on_failure=failures.append,
        retries=3,
        backoff_s=0.01,
    )
    d.start()
    d.on_event("error", {"errorMsg": "no answer"})
    d.on_event("error", {"errorMsg": "no answer (same attempt, second report)"})
    await wait_until(lambda: len(starts) == 2)
    d.on_event("answered", {"sessionId": "x"})
    await asyncio.sleep(0.05)
    assert starts == [{"sipUri": "sip:agent@example.com"}] * 2
    assert d.answered and failures == []


async def test_forwarder_without_retries_reports_a_network_failure() -> None:
    failures: list[str] = []

    async def update(call_id: str, domain: str, sip: str) -> None:
        raise OSError("connection refused")

    f = PinlessForwarder("c", "d", update, on_failure=failures.append, attempts=2, backoff_s=0.0)
    f.on_ready("")  # no endpoint: ignored, the next one still counts
    f.on_ready(SIP)
    await f.task
    assert f.calls == 2 and failures == [
        "could not forward the phone call into the room: connection refused"
    ]


@pytest.mark.parametrize("bad", ["555", "+0123", "14155550123", "tel:+14155550123", ""])
def test_dialout_targets_are_validated(bad: str) -> None:
    with pytest.raises(UsageError, match=r"E\.164"):
        dialout_settings(bad)
