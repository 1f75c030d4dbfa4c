"""Hooks used by tests/test_call_hooks.py and tests/test_call_e2e.py (``[bot] hooks =
"call_hooks:..."``). What they saw goes to ``SEEN`` (cleared by each test)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

SEEN: list[tuple[Any, ...]] = []


class Keypad:
    """on_dtmf -> the agent says which key was pressed."""

    async def on_call_start(self, call: Any) -> None:
        call.state["started"] = True
        SEEN.append(("start", call.transport))

    def on_participant_joined(self, call: Any, p: Any) -> None:  # a sync hook
        SEEN.append(("joined", p.id, p.phone, p.number))

    async def on_dtmf(self, call: Any, digit: str, p: Any) -> bool:
        SEEN.append(("dtmf", digit, p.id if p else None, call.state.get("started")))
        await call.say(f"You pressed {digit}.")
        return True  # answered here: not told to the agent

    def on_call_end(self, call: Any, summary: Any) -> None:
        SEEN.append(("end", summary.reason, [line.role for line in call.transcript]))


class Broken:
    """Every hook fails: raises, hangs (sync and async), or exits."""

    def on_call_start(self, call: Any) -> None:
        raise RuntimeError("on_call_start exploded")

    async def on_participant_joined(self, call: Any, p: Any) -> None:
        await asyncio.sleep(3600)  # hangs past the timeout: cancelled

    def on_participant_left(self, call: Any, p: Any) -> None:
        time.sleep(3600)  # a sync hook that never returns: its thread is left behind

    def on_user_transcript(self, call: Any, text: str, p: Any) -> None:
        raise SystemExit(3)

    async def on_agent_transcript(self, call: Any, text: str, interrupted: bool) -> None:
        SEEN.append(("agent", text))
        raise ValueError("on_agent_transcript exploded")

    async def on_dtmf(self, call: Any, digit: str, p: Any) -> None:
        raise KeyError(digit)

    def on_call_end(self, call: Any, summary: Any) -> None:
        SEEN.append(("end", summary.reason))
        raise RuntimeError("on_call_end exploded")


class TakesOverIdle:
    """on_idle takes over: no reminder; hangs up itself with its own reason."""

    async def on_idle(self, call: Any, seconds: float) -> bool:
        SEEN.append(("idle", seconds >= 1.0))  # at least idle_reminder_s of quiet
        await call.hang_up("caller went quiet")
        return True


class AfterEnd:
    """Acts after the call ended: every action is a no-op."""

    async def on_call_end(self, call: Any, summary: Any) -> None:
        await call.say("too late")
        await call.transfer("sales")
        await call.hang_up()
        SEEN.append(("after-end", call.ended))


class Updater:
    """Changes the session once someone is there."""

    async def on_participant_joined(self, call: Any, p: Any) -> None:
        await call.update(
            prompt="You are now a pirate.", turn_detection={"min_silence": 600, "max_silence": 900}
        )
        SEEN.append(("updated",))


class KeypadTransfer:
    """Key 1 -> sales, anything else -> support; what happened goes to SEEN."""

    async def on_dtmf(self, call: Any, digit: str, p: Any) -> None:
        target = "sales" if digit == "1" else "support"
        try:
            await call.transfer(target)
        except Exception as exc:
            SEEN.append(("transfer failed", type(exc).__name__, str(exc)))
            raise


class ImpatientTransfer:
    """Says a long line, then transfers: the hook's 0.5 s run out while the line plays."""

    async def on_dtmf(self, call: Any, digit: str, p: Any) -> None:
        await call.say("Please hold on while I connect you to our sales team right now.")
        await call.transfer("sales")


class Voicemail:
    """An answering machine picked up: leave a message and hang up."""

    async def on_status(self, call: Any, state: str, detail: str) -> None:
        SEEN.append(("status", state, detail))
        if state == "answered-by" and detail.startswith("machine"):
            await call.say("Hello, this is the clinic. Please call us back. Goodbye.")
            await call.hang_up("voicemail")


class SpeaksDuringGoodbye:
    """The caller starts speaking just as the idle goodbye begins (issue 16 follow-up #2):
    the first idle is the default check-in, the second the default goodbye (with speech
    arriving as it starts), the third ends the call with the hook's own reason."""

    def __init__(self) -> None:
        self.idles = 0

    async def on_idle(self, call: Any, seconds: float) -> bool | None:
        from botrun.core import events as ev

        self.idles += 1
        SEEN.append(("idle", self.idles))
        if self.idles == 2:
            asyncio.get_running_loop().call_soon(call, ev.SpeechStarted("wav-1", "caller"))
        if self.idles < 3:
            return None
        await call.hang_up("still there")
        return True


class IdleSteps(SpeaksDuringGoodbye):
    """SpeaksDuringGoodbye, noting which idle step each on_idle call is (``call.idle_step``)
    and whether ``seconds`` is at least that step's threshold (1 s in the test)."""

    async def on_idle(self, call: Any, seconds: float) -> bool | None:
        SEEN.append(("step", call.idle_step, seconds >= 1.0))
        return await super().on_idle(call, seconds)


#: A registered secret inside a dial-out destination (tests/test_call_actions_listed.py).
SECRET_URI = "sip:tok_Sekrit0123456789@pbx.example.com"


class Refusals:
    """Asks for actions the call refuses (an undeclared transfer target, bad digits, a
    dial-out the WAV transport cannot make, to a URI holding a secret), then one it does."""

    async def on_call_start(self, call: Any) -> None:
        from botrun.core.errors import CallActionError

        asks = (
            lambda: call.transfer("billing"),
            lambda: call.send_dtmf("12x"),
            lambda: call.dial_out("12345"),
            lambda: call.dial_out(SECRET_URI),
        )
        for ask in asks:
            try:
                await ask()
            except CallActionError as exc:
                SEEN.append(("refused", str(exc)))
        await call.send_dtmf("1#")


class SyncActs:
    """Sync hooks that act (issue 16 follow-up 2): each runs in a thread of its own, its
    actions run on the call's loop and have run when they return."""

    def on_call_start(self, call: Any) -> None:
        call.state["keys"] = []

    def on_dtmf(self, call: Any, digit: str, p: Any) -> bool:
        from botrun.core.errors import CallActionError

        call.state["keys"].append(digit)
        if digit == "1":
            call.say("You pressed 1. Connecting you to sales.")
            call.transfer("sales")  # after the line above has played
            SEEN.append(("sync transferred", call.ended))
        elif digit == "2":
            try:
                call.transfer("billing")  # refused: raised here, in the sync hook
            except CallActionError as exc:
                SEEN.append(("sync refused", str(exc)))
            try:
                call.dial_out("+14155550123").result()
            except CallActionError as exc:
                SEEN.append(("sync dial_out", str(exc)))
        return True

    def on_call_end(self, call: Any, summary: Any) -> None:
        SEEN.append(("end", call.state["keys"], call.say("too late").result()))


class ForgetsAwait:
    """An async hook that forgets to await an action: nothing is done, a warning says so."""

    async def on_dtmf(self, call: Any, digit: str, p: Any) -> bool:
        call.say("never said")  # (no await)
        return True


class KeepsOne:
    """Keeps key 1 to itself (returns True): the agent is told only about the others."""

    def on_dtmf(self, call: Any, digit: str, p: Any) -> bool:
        SEEN.append(("dtmf", digit))
        return digit == "1"


class SyncHangsUp:
    """A sync hook that says goodbye and hangs up (blocking its thread until it is done)."""

    def on_dtmf(self, call: Any, digit: str, p: Any) -> bool:
        call.say("Goodbye.")
        call.hang_up("caller pressed 9")  # after the goodbye has played
        SEEN.append(("hung up", call.ended))
        return True
