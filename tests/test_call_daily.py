"""A hook's transfer reaches the real daily-python SDK (issue 16): a dial-in caller presses 1,
the on_dtmf hook calls CallContext.transfer("sales"), the Daily transport sends the declared
destination to the SDK's sip_refer, and the offline SDK's own answer (not in a call) comes
back as the action's error -- in the summary, as a CallAction event and to the hook."""

from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any

import call_hooks
import pytest
from daily_support import make_transport, on_thread, participant
from daily_support import wait_for as wait_until

from botrun.core import events as ev
from botrun.core.bridge import Bridge
from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.events import BridgeEvent
from botrun.transports.daily.transport import DailyTransport

pytest.importorskip("daily")


class Spy:
    """The real CallClient, with the arguments of sip_refer / sip_call_transfer written down
    (passed through unchanged: the real SDK answers)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ("sip_refer", "sip_call_transfer"):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            with self._lock:
                self.calls.append((name, copy.deepcopy(args)))
            return attr(*args, **kw)

        return call


class CloudlessDaily(DailyTransport):
    """The real transport and SDK client; only the network join is answered locally."""

    def prepare(self, events: Any) -> None:
        super().prepare(events)
        self.spy = Spy(self._client)
        self._client = self.spy

    async def _join_call(self, token: str | None) -> dict[str, Any]:
        local = participant(self.options.bot_name, local=True, pid=self._bot_id)
        return {"participants": {"local": local}}


async def test_keypad_hook_transfer_reaches_the_real_sdk_and_its_answer_comes_back() -> None:
    from botrun.core.sim import Simulator

    call_hooks.SEEN.clear()
    seen: list[BridgeEvent] = []
    t = make_transport(CloudlessDaily)
    assert isinstance(t, CloudlessDaily)
    async with Simulator() as sim:
        cfg = apply_overrides(
            config_from_dict(
                {
                    "agent": {"greeting": ""},
                    "bot": {"hooks": "call_hooks:KeypadTransfer"},
                    "transfer": [{"name": "sales", "to": "sip:sales@pbx.example.com"}],
                }
            ),
            {"agent.url": sim.url, "bridge.idle_timeout_s": 30.0, "bridge.leave_grace_s": 0.2},
        )
        bridge = Bridge(t, cfg, observers=[seen.append])
        run = asyncio.create_task(bridge.run())
        await wait_until(lambda: t._joined, timeout=10)
        h = t._handler
        caller = participant("+14155550123")
        on_thread(
            h.on_dialin_connected,
            {"sessionId": caller["id"], "sipFrom": "sip:+14155550123@sip.example.net"},
        )
        on_thread(h.on_participant_joined, caller)
        on_thread(h.on_dtmf_event, {"sessionId": caller["id"], "tone": "1", "volume": 10})
        await wait_until(lambda: any(isinstance(e, ev.CallAction) for e in seen), timeout=15)
        bridge.stop("test over")
        summary = await asyncio.wait_for(run, timeout=30)
    assert summary.error is None, summary.error
    # the declared destination, for the dial-in caller, as the SDK's sip_refer settings
    assert t.spy.calls == [
        ("sip_refer", ({"sessionId": caller["id"], "toEndPoint": "sip:sales@pbx.example.com"},))
    ]
    (action,) = summary.actions
    assert (action.action, action.detail) == ("transfer", "sales (sip:sales@pbx.example.com)")
    assert action.error is not None and "NotInACall" in action.error  # the SDK's own answer
    assert [e for e in seen if isinstance(e, ev.CallAction)] == [action]
    (failed,) = call_hooks.SEEN
    assert failed[:2] == ("transfer failed", "CallActionError") and "NotInACall" in failed[2]
