"""Example bot: a phone receptionist (configs/receptionist.toml).

It greets the caller with a keypad menu, answers common questions from a small FAQ tool,
transfers to "sales" or "support" when asked (the built-in ``transfer_call`` tool) or when
the caller presses 1 or 2 (the ``on_dtmf`` hook), checks in when the caller goes quiet
(``on_idle``), and says goodbye and hangs up (the built-in ``end_call`` tool).

``botrun demo --config receptionist`` runs it against the local simulator with no account;
``botrun daily --room URL --config receptionist`` with a phone dial-in makes it real.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botrun.core.tools import tool

if TYPE_CHECKING:
    from botrun.core.call import CallContext
    from botrun.core.participants import Participant

log = logging.getLogger("botrun.receptionist")

MENU = "Press 1 for sales or 2 for support, or just tell me what you need."
KEYS = {"1": "sales", "2": "support"}
CHECK_IN = "Are you still there? " + MENU

FAQ = {
    "hours": "We are open Monday to Friday from 9 to 6, and Saturday from 10 to 4.",
    "address": "We are at 12 Harbour Street, next to the central station.",
    "returns": "You can return anything within 30 days with the receipt, free of charge.",
    "shipping": "Orders ship within two working days; delivery is free above 50 euros.",
}
_WORDS = {
    "hours": ("hour", "open", "close", "time", "when"),
    "address": ("address", "where", "located", "location", "find you"),
    "returns": ("return", "refund", "exchange"),
    "shipping": ("ship", "deliver", "post"),
}


@tool
def faq(question: str) -> str:
    """Answer a common question about the shop: opening hours, address, returns, shipping.

    Args:
        question: The caller's question, or its topic ("opening hours").
    """
    q = question.casefold()
    for topic, words in _WORDS.items():
        if any(w in q for w in words):
            return FAQ[topic]
    return "I have no answer to that; offer to transfer the caller to support."


class Receptionist:
    """Per-call hooks (one instance per call): ``[bot] hooks =
    "botrun.bots.examples.receptionist:Receptionist"``."""

    def on_call_start(self, call: CallContext) -> None:
        call.state["keys"] = []

    def on_participant_joined(self, call: CallContext, p: Participant) -> None:
        if p.phone:
            log.info("caller %s on the line", p.number or "(number withheld)")

    async def on_dtmf(self, call: CallContext, digit: str, p: Participant | None) -> bool:
        call.state["keys"].append(digit)
        target = KEYS.get(digit)
        if target is None:
            await call.say(f"Sorry, {digit} is not an option. {MENU}")
        else:
            await call.say(f"Connecting you to {target} now.")
            await call.transfer(target)  # after the line above has played
        return True  # the menu is answered here: the key is not told to the agent

    async def on_idle(self, call: CallContext, seconds: float) -> bool | None:
        if call.idle_step != "check-in":
            return None  # quiet again after the check-in: botrun says goodbye and hangs up
        await call.say(CHECK_IN)  # (every check-in: the steps start again once they speak)
        return True  # handled: no default reminder

    def on_call_end(self, call: CallContext, summary: Any) -> None:
        done = [a.what for a in summary.actions if a.error is None]
        log.info("call %s ended (%s); actions: %s", call.call_id, summary.reason, done)
