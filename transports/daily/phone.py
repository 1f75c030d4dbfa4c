"""The phone legs of a Daily call and the settings of the call actions on them (issue 16).

A phone leg is a SIP/PSTN participant Daily bridged into the room: a dial-in caller
(``on_dialin_connected``) or a number the bot dialed (``on_dialout_connected`` /
``answered``, or the ``start_dialout`` completion). Daily names a leg by its ``sessionId``,
which is also the participant id of the leg in the room: ``stop_dialout``,
``sip_call_transfer``, ``sip_refer``, ``send_dtmf`` and ``eject_remote_participants`` all
take it.

Nothing here touches daily-python: :class:`PhoneLegs` is fed SDK payloads on the event loop
and answers which leg an action is for; the ``*_settings`` functions build the exact dicts
the SDK parses (checked against the real SDK in tests/test_daily_actions.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from botrun.core.errors import CallActionError

log = logging.getLogger("botrun.daily")

Kind = Literal["dialin", "dialout"]

#: Keypad tones Daily accepts (``send_dtmf`` refuses anything else).
DTMF_TONES = frozenset("0123456789*#ABCD")
#: ``send_dtmf`` takes at most this many tones per request.
DTMF_MAX_TONES = 20

_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class PhoneLeg:
    session_id: str
    kind: Kind
    number: str | None = None  # the caller's number (dial-in) or the number dialed
    answered: bool = False
    by_action: bool = False  # dialed by a call action (CallContext.dial_out), not --dial-out


def session_id_of(value: Any) -> str | None:
    """The ``sessionId`` in an SDK payload: a dialin/dialout event, or a ``start_dialout``
    completion value (a plain id, or a dict with ``sessionId``, or ``{"session": {...}}``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        sid = value.get("sessionId") or value.get("session_id")
        if not sid and isinstance(value.get("session"), dict):
            sid = value["session"].get("sessionId")
        return str(sid) if sid else None
    return None


def caller_number(sip_from: Any) -> str | None:
    """A readable caller number from a dial-in's ``sipFrom`` (``sip:+1415…@host`` → ``+1415…``,
    other SIP URIs kept whole)."""
    if not isinstance(sip_from, str) or not sip_from.strip():
        return None
    text = sip_from.strip().strip("<>")
    m = re.match(r"^(?:sips?:|tel:)?(\+?\d{6,15})(?:@|;|$)", text)
    if m:
        return m.group(1)
    return text


def is_phone_number(target: str) -> bool:
    return bool(_PHONE.match(target))


class PhoneLegs:
    """The phone legs in the room, in the order Daily reported them (event loop only)."""

    def __init__(self) -> None:
        self._legs: dict[str, PhoneLeg] = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._legs

    def __len__(self) -> int:
        return len(self._legs)

    def get(self, session_id: str) -> PhoneLeg | None:
        return self._legs.get(session_id)

    def all(self) -> list[PhoneLeg]:
        return list(self._legs.values())

    def of_kind(self, kind: Kind) -> list[PhoneLeg]:
        return [leg for leg in self._legs.values() if leg.kind == kind]

    def add(self, session_id: str, kind: Kind, number: str | None = None) -> tuple[PhoneLeg, bool]:
        """Record a leg (again); returns it and whether it is new or its number is new."""
        leg = self._legs.get(session_id)
        if leg is None:
            leg = self._legs[session_id] = PhoneLeg(session_id, kind, number)
            return leg, True
        if number and leg.number != number:
            leg.number = number
            return leg, True
        return leg, False

    def remove(self, session_id: str | None) -> PhoneLeg | None:
        return self._legs.pop(session_id, None) if session_id else None

    def pick(self, participant_id: str | None, prefer: Kind, action: str) -> PhoneLeg:
        """The leg an action is for: ``participant_id``'s, or else the only leg of kind
        ``prefer``, or else the only leg. A clear :class:`CallActionError` otherwise."""
        if participant_id is not None:
            leg = self._legs.get(participant_id)
            if leg is None:
                raise CallActionError(
                    f"cannot {action}: participant {participant_id} is not a phone caller "
                    "(no dial-in or dial-out leg with that id)"
                )
            return leg
        if not self._legs:
            raise CallActionError(f"cannot {action}: there is no phone caller in this call")
        for candidates in (self.of_kind(prefer), self.all()):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                ids = ", ".join(leg.session_id for leg in candidates)
                raise CallActionError(
                    f"cannot {action}: several phone callers are in this call ({ids}); "
                    "name the participant"
                )
        raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------- settings
def transfer_method(leg: PhoneLeg, target: str) -> Literal["sip_call_transfer", "sip_refer"]:
    """``sip_refer`` hands a dial-in SIP call to a SIP endpoint outside Daily (Daily leaves
    the media path); everything else -- a phone number, a Daily SIP URI (another room),
    any transfer of a dial-out leg -- is ``sip_call_transfer`` (Daily stays in the path)."""
    low = target.lower()
    if (
        leg.kind == "dialin"
        and low.startswith(("sip:", "sips:"))
        and not re.search(r"@[^;>]*\bdaily\.co\b", low)
    ):
        return "sip_refer"
    return "sip_call_transfer"


def transfer_settings(leg: PhoneLeg, target: str) -> dict[str, str]:
    """``SipCallTransferSettings`` (both methods): ``{"sessionId", "toEndPoint"}``."""
    value = target.strip()
    if not (is_phone_number(value) or value.lower().startswith(("sip:", "sips:"))):
        raise CallActionError(
            f"cannot transfer to {target!r}: expected a phone number in E.164 form "
            "(+14155550123) or a SIP URI (sip:user@host)"
        )
    return {"sessionId": leg.session_id, "toEndPoint": value}


def dtmf_settings(leg: PhoneLeg, digits: str) -> list[dict[str, str]]:
    """``DialoutSendDtmfSettings`` requests for ``digits``: ``{"sessionId", "tones"}``, at
    most :data:`DTMF_MAX_TONES` tones each."""
    bad = sorted({d for d in digits if d not in DTMF_TONES})
    if not digits or bad:
        raise CallActionError(
            f"cannot send DTMF {digits!r}: tones must be 0-9, *, #, A-D"
            + (f" (not {''.join(bad)!r})" if bad else "")
        )
    return [
        {"sessionId": leg.session_id, "tones": digits[i : i + DTMF_MAX_TONES]}
        for i in range(0, len(digits), DTMF_MAX_TONES)
    ]


def dtmf_tones(data: dict[str, Any]) -> tuple[str | None, list[str], str]:
    """From an ``on_dtmf_event`` payload (``DtmfEvent``: sessionId, tone, volume, method):
    the sender's session id, the valid tones in it, and whatever was not a tone."""
    pid = session_id_of(data)
    raw = data.get("tone")
    text = str(raw).strip().upper() if raw is not None else ""
    tones = [t for t in text if t in DTMF_TONES]
    rest = "".join(t for t in text if t not in DTMF_TONES)
    return pid, tones, rest
