"""Call actions on Daily through the real daily-python SDK, offline (issue 16 item 6).

The transport's client is the real ``daily.CallClient`` (``prepare``: created, not joined).
:class:`SdkSpy` stands between the two only to write down the arguments each call action
hands to the SDK; it passes them through unchanged, and the real SDK answers. Offline it
answers every call action with an error ("not in a call"), which the transport must turn
into a :class:`CallActionError` carrying the SDK's message. The SDK also parses the settings
dicts first and answers a malformed one differently ("settings are not valid: missing field
..."), so an answer of "not in a call" proves the SDK accepted the shape botrun sent.

SDK events (dial-in/out connected, DTMF, network status) are driven through the transport's
real ``DailyHandler`` from foreign threads with payloads shaped like daily-python's.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from daily_support import FakeAudioData, RecordingEvents, make_transport, on_thread, participant
from daily_support import wait_for as wait_until
from speech import speak

from botrun.core import events as ev
from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.errors import CallActionError
from botrun.core.events import BridgeEvent
from botrun.transports.daily.dialin import DialOut
from botrun.transports.daily.transport import DailyTransport

daily = pytest.importorskip("daily")

ACTIONS = (
    "sip_call_transfer",
    "sip_refer",
    "send_dtmf",
    "start_dialout",
    "stop_dialout",
    "eject_remote_participants",
)
NOT_IN_A_CALL = "NotInACall"


class SdkSpy:
    """The real ``CallClient`` with the arguments of its call actions written down."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ACTIONS:
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            with self._lock:
                self.calls.append((name, copy.deepcopy(args)))
            return attr(*args, **kw)

        return call

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for n, args in self.calls if n == name]


@pytest.fixture
async def call():
    events = RecordingEvents()
    t = make_transport()
    t.prepare(events)
    spy = SdkSpy(t._client)
    t._client = spy
    t._joined = True
    yield t, events, spy
    await t.leave()


def sid() -> str:
    return str(uuid.uuid4())  # Daily's session/participant ids are UUIDs (the SDK parses them)


def dialin(t: Any, session_id: str, sip_from: str = "sip:+14155550123@pstn.example") -> None:
    on_thread(t._handler.on_dialin_connected, {"sessionId": session_id, "sipFrom": sip_from})


def dialout(t: Any, session_id: str, kind: str = "connected") -> None:
    on_thread(getattr(t._handler, f"on_dialout_{kind}"), {"sessionId": session_id})


# ------------------------------------------------------------------ phone participants
async def test_dialin_and_dialout_legs_are_reported_as_phone_participants(call) -> None:
    t, events, _ = call
    caller, callee = sid(), sid()
    dialin(t, caller)
    await wait_until(lambda: events.of("phone"))
    assert events.of("phone") == [("phone", caller, "+14155550123")]

    # Daily accepted a start_dialout (its completion, without a session id yet) ...
    t._dialout_started({"phoneNumber": "+14155550199"}, None, None, lambda error: None)
    dialout(t, callee)  # ... and the leg connects: the number dialed is the leg's number
    dialout(t, callee, "answered")  # the same leg again: reported once
    await wait_until(lambda: len(events.of("phone")) == 2)
    assert events.of("phone")[1] == ("phone", callee, "+14155550199")
    assert [leg.kind for leg in t.legs.all()] == ["dialin", "dialout"]
    assert t.legs.get(callee) is not None and t.legs.get(callee).answered


async def test_a_legs_number_comes_from_the_sip_display_name_without_sip_from(call) -> None:
    """botrun serve sets the room's sip.display_name to the caller's number: Daily names the
    SIP participant with it, whichever of the two events comes first."""
    t, events, _ = call
    first, second = participant("+14155550123"), participant("+14155550124")
    on_thread(t._handler.on_dialin_connected, {"sessionId": first["id"]})  # no sipFrom
    await wait_until(lambda: first["id"] in t.legs)  # the leg before its participant
    on_thread(t._handler.on_participant_joined, first)
    on_thread(t._handler.on_participant_joined, second)
    on_thread(t._handler.on_dialout_connected, {"sessionId": second["id"]})
    on_thread(t._handler.on_participant_joined, participant("Ann"))  # not a phone leg
    await wait_until(lambda: len(events.of("phone")) == 3)
    assert events.of("phone") == [
        ("phone", first["id"], None),
        ("phone", first["id"], "+14155550123"),
        ("phone", second["id"], "+14155550124"),
    ]


# ------------------------------------------------------------------ transfer
async def test_transfer_of_a_dialin_caller_to_a_number_reaches_sip_call_transfer(call) -> None:
    t, _, spy = call
    caller = sid()
    dialin(t, caller)
    await wait_until(lambda: caller in t.legs)
    with pytest.raises(CallActionError) as err:
        await t.transfer("+14155550100")
    assert spy.of("sip_call_transfer") == [({"sessionId": caller, "toEndPoint": "+14155550100"},)]
    assert spy.of("sip_refer") == []
    # The SDK's own answer, carried in the message: it accepted the settings' shape.
    assert "could not transfer the call to +14155550100" in str(err.value)
    assert NOT_IN_A_CALL in str(err.value) and "not valid" not in str(err.value)


async def test_transfer_of_a_dialin_caller_to_an_outside_sip_uri_is_a_sip_refer(call) -> None:
    t, _, spy = call
    caller = sid()
    dialin(t, caller)
    await wait_until(lambda: caller in t.legs)
    with pytest.raises(CallActionError, match=NOT_IN_A_CALL):
        await t.transfer("sip:sales@pbx.example.com", participant_id=caller)
    assert spy.of("sip_refer") == [
        ({"sessionId": caller, "toEndPoint": "sip:sales@pbx.example.com"},)
    ]
    # Another Daily room stays a sip_call_transfer (Daily keeps the call).
    with pytest.raises(CallActionError, match=NOT_IN_A_CALL):
        await t.transfer("sip:room-b@botrun.sip.daily.co")
    assert spy.of("sip_call_transfer") == [
        ({"sessionId": caller, "toEndPoint": "sip:room-b@botrun.sip.daily.co"},)
    ]


async def test_transfer_of_a_dialout_leg_is_a_sip_call_transfer(call) -> None:
    t, _, spy = call
    callee = sid()
    dialout(t, callee)
    await wait_until(lambda: callee in t.legs)
    with pytest.raises(CallActionError, match=NOT_IN_A_CALL):
        await t.transfer("sip:agent@pbx.example.com")
    assert spy.of("sip_call_transfer") == [
        ({"sessionId": callee, "toEndPoint": "sip:agent@pbx.example.com"},)
    ]


async def test_the_sdk_would_refuse_a_malformed_settings_dict(call) -> None:
    """The check above can fail: a misspelt key gets a different answer from the SDK."""
    t, _, _ = call
    with pytest.raises(CallActionError, match="missing field `toEndPoint`"):
        await t._request(
            "sip_call_transfer", {"sessionId": sid(), "toEndpoint": "+14155550100"}, what="x"
        )
    with pytest.raises(CallActionError, match="missing field `tones`"):
        await t._request("send_dtmf", {"sessionId": sid(), "digits": "1"}, what="x")


async def test_transfer_without_a_phone_caller_or_to_a_bad_target_is_refused(call) -> None:
    t, _, spy = call
    with pytest.raises(CallActionError, match="there is no phone caller in this call"):
        await t.transfer("+14155550100")
    with pytest.raises(CallActionError, match="is not a phone caller"):
        await t.transfer("+14155550100", participant_id=sid())
    a, b = sid(), sid()
    dialin(t, a)
    dialin(t, b)
    await wait_until(lambda: len(t.legs) == 2)
    with pytest.raises(CallActionError, match="several phone callers"):
        await t.transfer("+14155550100")
    with pytest.raises(CallActionError, match=r"expected a phone number in E\.164 form"):
        await t.transfer("sales desk", participant_id=a)
    assert spy.calls == []  # nothing reached the SDK


# ------------------------------------------------------------------ DTMF out
async def test_send_dtmf_reaches_the_sdk_in_requests_of_at_most_20_tones(call) -> None:
    t, _, spy = call
    callee = sid()
    dialout(t, callee)
    await wait_until(lambda: callee in t.legs)
    with pytest.raises(CallActionError) as err:
        await t.send_dtmf("1#")
    assert spy.of("send_dtmf") == [({"sessionId": callee, "tones": "1#"},)]
    assert "could not send DTMF tones" in str(err.value) and NOT_IN_A_CALL in str(err.value)

    t.legs.get(callee)  # still there: a failed send does not drop the leg
    spy.calls.clear()

    class Accepting:  # the SDK in a call would accept: check the split, not the answer
        def __init__(self, real: Any) -> None:
            self.real = real

        def send_dtmf(self, settings: Any, completion: Any) -> None:
            spy.calls.append(("send_dtmf", (settings,)))
            completion(None)

    t._client = Accepting(spy)
    try:
        await t.send_dtmf("0123456789*#ABCD0123456789")
    finally:
        t._client = spy
    tones = [args[0]["tones"] for args in spy.of("send_dtmf")]
    assert tones == ["0123456789*#ABCD0123", "456789"]


async def test_send_dtmf_refuses_bad_tones_before_the_sdk(call) -> None:
    t, _, spy = call
    dialout(t, sid())
    await wait_until(lambda: len(t.legs) == 1)
    with pytest.raises(CallActionError, match="tones must be 0-9"):
        await t.send_dtmf("12x")
    assert spy.calls == []


# ------------------------------------------------------------------ dial-out
async def test_dial_out_reaches_start_dialout_and_carries_the_sdks_error(call) -> None:
    t, _, spy = call
    with pytest.raises(CallActionError) as err:
        await t.dial_out("+1 (415) 555-0123")
    assert spy.of("start_dialout") == [({"phoneNumber": "+14155550123"},)]
    assert "could not dial +14155550123" in str(err.value) and NOT_IN_A_CALL in str(err.value)
    assert t._dialing == []  # a refused dial-out leaves nothing pending
    with pytest.raises(CallActionError, match="cannot dial '555'"):
        await t.dial_out("555")
    with pytest.raises(CallActionError, match=NOT_IN_A_CALL):
        await t.dial_out("sip:agent@pbx.example.com")
    assert spy.of("start_dialout")[-1] == ({"sipUri": "sip:agent@pbx.example.com"},)


# ------------------------------------------------------------------ hang up and leave
async def test_hang_up_ends_every_phone_leg_and_reports_the_sdks_errors(call) -> None:
    t, events, spy = call
    await t.hang_up("no phone legs: nothing to end")  # a plain meeting: leaving is enough
    assert spy.calls == []
    caller, callee = sid(), sid()
    dialin(t, caller)
    dialout(t, callee)
    await wait_until(lambda: len(t.legs) == 2)
    with pytest.raises(CallActionError) as err:
        await t.hang_up("the bot said goodbye")
    assert spy.of("eject_remote_participants") == [([caller],)]
    assert spy.of("stop_dialout") == [(callee,)]
    assert str(err.value).count(NOT_IN_A_CALL) == 2
    assert "could not end the phone call" in str(err.value)
    assert "could not end the dial-out" in str(err.value)
    # Daily also reports each failed request through on_error: logged, the call goes on.
    await wait_until(lambda: len(t.errors) >= 2)
    assert all(e.startswith("Error handling ") for e in t.errors)
    assert events.of("ended") == []


async def test_the_caller_leaving_after_the_bots_hang_up_is_not_the_caller_hanging_up() -> None:
    """A dial-in bot ends the call when the caller hangs up; after its own hang-up the legs
    it ended leaving must not turn the call's reason into "the caller hung up"."""
    events = RecordingEvents()
    t = make_transport(dialin_call_id="call-1", dialin_call_domain="domain-1", api_key="k")
    t.prepare(events)
    t._joined = True
    try:
        caller = participant("+14155550123")
        dialin(t, caller["id"])
        on_thread(t._handler.on_participant_joined, caller)
        await wait_until(lambda: caller["id"] in t.legs and events.of("joined"))
        with pytest.raises(CallActionError, match=NOT_IN_A_CALL):
            await t.hang_up("hang_up")  # offline the eject fails; online the caller leaves:
        on_thread(t._handler.on_participant_left, caller, "leftCall")
        on_thread(t._handler.on_dialin_stopped, {"sessionId": caller["id"]})
        await wait_until(lambda: events.of("left") and caller["id"] not in t.legs)
        await asyncio.sleep(0.1)  # the dial-in stop, handed to the loop after the leave
        assert events.of("ended") == []
    finally:
        await t.leave()


async def test_leaving_stops_the_dial_out_leg(call, caplog) -> None:
    """Regression (issue 16): the leg the bot dialed was never stopped when it left, so the
    called phone stayed connected to the room."""
    t, _, spy = call
    callee = sid()
    dialout(t, callee)
    await wait_until(lambda: callee in t.legs)
    with caplog.at_level(logging.WARNING, logger="botrun.daily"):
        await t.leave()
    assert spy.of("stop_dialout") == [(callee,)]
    # The real SDK's completion came back (offline: not in a call) and was logged.
    assert any(
        "end the dial-out leg" in r.getMessage() and NOT_IN_A_CALL in r.getMessage()
        for r in caplog.records
    )


async def test_a_dial_out_started_by_the_cli_is_stopped_on_leave_too(call) -> None:
    t, _, spy = call
    t._dialout_started({"phoneNumber": "+14155550123"}, None, None, lambda error: None)
    assert t._dialing == [("+14155550123", False)]
    callee = sid()
    dialout(t, callee)
    await wait_until(lambda: callee in t.legs)
    assert t.legs.get(callee).number == "+14155550123" and t._dialing == []
    await t.leave()
    assert spy.of("stop_dialout") == [(callee,)]


async def test_a_dial_out_by_a_call_action_fails_on_its_own(call) -> None:
    """An error on a leg the bot dialed with CallContext.dial_out is shown to the user and
    does not retry (or end the call through) the --dial-out of the same bot."""
    t, events, spy = call
    callee = sid()
    starts: list[dict[str, str]] = []
    failures: list[str] = []
    t.dialout = DialOut(
        "+14155550999",
        lambda settings, done: starts.append(settings),
        on_failure=failures.append,
        retries=3,
        backoff_s=0.01,
    )

    class Accepting:  # the SDK in a call would accept it: (session_id, error)
        def start_dialout(self, settings: Any, completion: Any) -> None:
            spy.calls.append(("start_dialout", (settings,)))
            completion(callee, None)

    t._client = Accepting()
    try:
        assert await t.dial_out("+14155550123") == callee
    finally:
        t._client = spy
    assert events.of("phone") == [("phone", callee, "+14155550123")]
    on_thread(t._handler.on_dialout_error, {"sessionId": callee, "errorMsg": "busy"})
    await wait_until(lambda: events.of("status"))
    assert events.of("status") == [("status", "dial-out failed", "+14155550123: busy")]
    await asyncio.sleep(0.2)  # a retry of --dial-out would have started by now
    assert starts == [] and failures == [] and callee not in t.legs


async def test_a_leg_that_ended_is_not_stopped_again(call) -> None:
    t, _, spy = call
    callee = sid()
    dialout(t, callee)
    await wait_until(lambda: callee in t.legs)
    dialout(t, callee, "stopped")
    await wait_until(lambda: callee not in t.legs)
    await t.leave()
    assert spy.of("stop_dialout") == []


async def test_actions_after_leaving_are_clear_errors(call) -> None:
    t, _, spy = call
    dialout(t, sid())
    await wait_until(lambda: len(t.legs) == 1)
    await t.leave()
    spy.calls.clear()
    with pytest.raises(CallActionError, match="the bot is not in the Daily room"):
        await t.send_dtmf("1")
    assert spy.calls == []


async def test_a_completion_that_never_comes_times_out(call) -> None:
    t, _, spy = call

    class Silent:
        def send_dtmf(self, settings: Any, completion: Any) -> None:
            pass  # never answers

    t._client, t.action_timeout_s = Silent(), 0.05
    try:
        dialout(t, sid())
        await wait_until(lambda: len(t.legs) == 1)
        with pytest.raises(CallActionError, match=r"Daily did not answer within 0\.05 s"):
            await t.send_dtmf("1")
    finally:
        t._client = spy


# ------------------------------------------------------------------ DTMF in, network
async def test_keypad_events_reach_the_bridge_and_bad_tones_are_counted(call) -> None:
    t, events, _ = call
    caller = sid()
    for tone in ("5", "#", "x", "", "a"):
        on_thread(
            t._handler.on_dtmf_event,
            {"sessionId": caller, "tone": tone, "volume": 10, "method": "telephone-event"},
        )
    await wait_until(lambda: t.dtmf_rejected == 2 and len(events.of("dtmf")) == 3)
    assert events.of("dtmf") == [
        ("dtmf", caller, "5"),
        ("dtmf", caller, "#"),
        ("dtmf", caller, "A"),
    ]
    assert "daily-native-test" not in events.threads  # handed to the loop, not called there


async def test_network_interruptions_show_as_reconnecting_then_reconnected(call) -> None:
    t, events, _ = call
    h = t._handler
    on_thread(
        h.on_network_connection_status_updated, {"connection": "signalling", "event": "connected"}
    )
    on_thread(
        h.on_network_connection_status_updated, {"connection": "signalling", "event": "interrupted"}
    )
    on_thread(
        h.on_network_connection_status_updated, {"connection": "signalling", "event": "interrupted"}
    )
    on_thread(
        h.on_network_connection_status_updated, {"connection": "signalling", "event": "connected"}
    )
    await wait_until(lambda: len(events.of("status")) == 2)
    assert [c[1] for c in events.of("status")] == ["reconnecting", "reconnected"]
    assert "signalling" in events.of("status")[0][2]


# ------------------------------------------------------------------ through the bridge
class CloudlessDaily(DailyTransport):
    """The real transport and SDK client (behind the spy); only the network join is
    answered locally, as the offline SDK cannot reach Daily's cloud."""

    def prepare(self, events: Any) -> None:
        super().prepare(events)
        self.spy = SdkSpy(self._client)
        self._client = self.spy

    async def _join_call(self, token: str | None) -> dict[str, Any]:
        local = participant(self.options.bot_name, local=True, pid=self._bot_id)
        return {"participants": {"local": local}}


async def test_phone_caller_keypad_network_and_dial_out_through_the_real_bridge() -> None:
    from botrun.core.bridge import Bridge
    from botrun.core.sim import Simulator

    seen: list[BridgeEvent] = []
    t = make_transport(CloudlessDaily)
    assert isinstance(t, CloudlessDaily)
    async with Simulator() as sim:
        cfg = apply_overrides(
            config_from_dict({}),
            {"agent.url": sim.url, "bridge.idle_timeout_s": 30.0, "bridge.leave_grace_s": 0.2},
        )
        bridge = Bridge(t, cfg, observers=[seen.append])
        call = asyncio.create_task(bridge.run())
        await wait_until(lambda: t._joined, timeout=10)
        h = t._handler
        caller = participant("+14155550123")  # Daily names a SIP caller by the display name
        callee = sid()
        on_thread(
            h.on_dialin_connected,
            {"sessionId": caller["id"], "sipFrom": "sip:+14155550123@sip.example.net"},
        )
        on_thread(h.on_participant_joined, caller)
        on_thread(h.on_dialout_answered, {"sessionId": callee})
        on_thread(h.on_dtmf_event, {"sessionId": caller["id"], "tone": "7", "volume": 10})
        status = h.on_network_connection_status_updated
        on_thread(status, {"connection": "signalling", "event": "interrupted"})
        on_thread(status, {"connection": "signalling", "event": "connected"})

        def states() -> list[str]:
            return [e.state for e in seen if isinstance(e, ev.TransportStatus)]

        await wait_until(lambda: states() == ["reconnecting", "reconnected"], timeout=10)
        await wait_until(lambda: any(isinstance(e, ev.DtmfReceived) for e in seen), timeout=10)
        p = bridge.roster.get(caller["id"])
        assert p is not None and p.phone and p.number == "+14155550123"
        bridge.stop("test over")
        summary = await asyncio.wait_for(call, timeout=30)
    assert summary.error is None, summary.error
    keys = [(e.digit, e.participant_id) for e in seen if isinstance(e, ev.DtmfReceived)]
    assert keys == [("7", caller["id"])]
    # Leaving ended the leg the bot had dialed (the regression, end to end).
    assert t.spy.of("stop_dialout") == [(callee,)]
    assert t._client is None  # left and released


def feed(t: DailyTransport, pid: str, pcm: bytes) -> threading.Thread:
    """``pcm`` (16 kHz) through the transport's audio renderer in real time, 20 ms per
    callback, from a thread of its own (like Daily's audio thread)."""
    frame = 640

    def run() -> None:
        t0 = time.monotonic()
        for i, start in enumerate(range(0, len(pcm), frame)):
            chunk = pcm[start : start + frame].ljust(frame, b"\0")
            t._renderer(pid, FakeAudioData(chunk), "microphone")
            time.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))

    thread = threading.Thread(target=run, name="daily-audio-test")
    thread.start()
    return thread


async def test_the_transfer_tool_reaches_the_real_sdk_and_the_agent_hears_its_answer(
    tmp_path: Path,
) -> None:
    """Issue 16, done when: the agent calls transfer_call; through the bridge and the
    CallContext the transfer reaches daily-python's sip_refer (a SIP target outside Daily)
    and sip_call_transfer (a phone number) with the caller's session; offline the SDK
    answers "not in a call", and that real answer is the tool's error the agent hears."""
    from botrun.bots.runner import bot_tools
    from botrun.core.bridge import Bridge
    from botrun.core.sim import Simulator
    from botrun.core.sim.scenario import scenario_from_dict

    sales = speak("Put me through to sales.", tmp_path / "sales.wav", pad_s=4.0).tobytes()
    desk = speak("Then the front desk please.", tmp_path / "desk.wav", pad_s=4.0).tobytes()
    scenario = scenario_from_dict(
        {
            "turns": [
                {
                    "user": "Put me through to sales.",
                    "reply": "Transferring you to sales.",
                    "tool": {"name": "transfer_call", "arguments": {"target": "sales"}},
                },
                {
                    "user": "Then the front desk please.",
                    "reply": "Trying the front desk.",
                    "tool": {"name": "transfer_call", "arguments": {"target": "desk"}},
                },
            ]
        }
    )
    cfg = config_from_dict(
        {
            "agent": {"greeting": "", "tools": ["transfer_call"]},
            "transfer": [
                {"name": "sales", "to": "sip:sales@pbx.example.com"},
                {"name": "desk", "to": "+14155550100"},
            ],
        }
    )
    seen: list[BridgeEvent] = []
    t = make_transport(CloudlessDaily)
    assert isinstance(t, CloudlessDaily)
    async with Simulator(scenario) as sim:
        cfg = apply_overrides(
            cfg, {"agent.url": sim.url, "bridge.idle_timeout_s": 0.0, "bridge.leave_grace_s": 0.5}
        )
        bridge = Bridge(t, cfg, tools=bot_tools(cfg), observers=[seen.append])
        call = asyncio.create_task(bridge.run())
        await wait_until(lambda: t._joined, timeout=10)
        h = t._handler
        caller = participant("+14155550123")
        on_thread(
            h.on_dialin_connected,
            {"sessionId": caller["id"], "sipFrom": "sip:+14155550123@sip.example.net"},
        )
        on_thread(h.on_participant_joined, caller)
        await wait_until(lambda: bool(sim.sessions), timeout=10)
        for words, turn in ((sales, 1), (desk, 2)):
            await asyncio.to_thread(feed(t, caller["id"], words).join)
            await wait_until(lambda n=turn: len(sim.session().tool_results) >= n, timeout=20)
        on_thread(h.on_participant_left, caller, "leftCall")
        summary = await asyncio.wait_for(call, timeout=30)
        results = sim.session().tool_results
    assert summary.error is None, summary.error
    session = {"sessionId": caller["id"]}
    assert t.spy.of("sip_refer") == [({**session, "toEndPoint": "sip:sales@pbx.example.com"},)]
    assert t.spy.of("sip_call_transfer") == [({**session, "toEndPoint": "+14155550100"},)]
    errors = [json.loads(r["result"])["error"] for r in results]
    assert errors == [
        "tool 'transfer_call': could not transfer the call to sip:sales@pbx.example.com: "
        "Daily said Sip(CallState(NotInACall))",
        "tool 'transfer_call': could not transfer the call to +14155550100: "
        "Daily said Sip(CallState(NotInACall))",
    ]
    assert [(a.action, a.detail) for a in summary.actions] == [
        ("transfer", "sales (sip:sales@pbx.example.com)"),
        ("transfer", "desk (+14155550100)"),
    ]
    assert all(NOT_IN_A_CALL in (a.error or "") for a in summary.actions)
