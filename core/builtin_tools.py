"""The tools botrun ships, enabled by bare name in ``[agent] tools``:

* ``end_call`` -- the agent says goodbye and calls it in the same turn; the goodbye plays in
  full, then the call ends (summary reason ``hang_up``).
* ``transfer_call`` -- hands the caller to a ``[[transfer]]`` target the config declares, by
  name (the agent never gets to dial a number of its choosing).
* ``send_dtmf`` -- keypad tones, e.g. to get through a phone menu on a dial-out.

Each takes the call's :class:`~botrun.core.call.CallContext`; a refused or unsupported action
becomes the tool's error result, which the agent hears about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .tools import ToolSpec, make_spec

if TYPE_CHECKING:
    from .call import CallContext
    from .config import BotConfig

#: Built-in tools may wait for the goodbye or hand-over line to play out first.
BUILTIN_TIMEOUT_S = 30.0


async def end_call(call: CallContext) -> dict[str, Any]:
    """End the call. Say goodbye first, in the same reply: the goodbye is played in full,
    then the call ends. Use it when the caller is done or asks to hang up."""
    call.spawn(call.hang_up("hang_up"), "end_call")
    return {"ok": True, "note": "The call ends once your goodbye has played."}


async def transfer_call(target: str, call: CallContext) -> dict[str, Any]:
    """Transfer the caller to a person or department. Tell the caller first, in the same
    reply; what you are saying is played before the transfer.

    Args:
        target: Where to transfer, one of the names offered.
    """
    await call.transfer(target)
    return {"transferred": True, "target": target}


async def send_dtmf(digits: str, call: CallContext) -> dict[str, Any]:
    """Press keys on the phone keypad (DTMF), e.g. to choose an option in a phone menu.

    Args:
        digits: The keys to press, in order: 0-9, * and # (A-D on special menus).
    """
    await call.send_dtmf(digits)
    return {"sent": digits}


def builtin_tools(cfg: BotConfig | None = None) -> dict[str, ToolSpec]:
    """The built-in tools for a bot with ``cfg``: ``transfer_call`` offers exactly its
    declared ``[[transfer]]`` targets (as an enum, each with its description)."""
    out = {
        "end_call": make_spec(end_call, timeout_s=BUILTIN_TIMEOUT_S),
        "send_dtmf": make_spec(send_dtmf, timeout_s=BUILTIN_TIMEOUT_S),
    }
    targets = cfg.transfer if cfg is not None else []
    spec = make_spec(transfer_call, timeout_s=BUILTIN_TIMEOUT_S)
    if targets:
        offered = "; ".join(
            f"{t.name}: {t.description}" if t.description else t.name for t in targets
        )
        target = {
            "type": "string",
            "enum": [t.name for t in targets],
            "description": f"Where to transfer ({offered}).",
        }
        spec = make_spec(
            transfer_call,
            description=spec.description,
            parameters={"type": "object", "properties": {"target": target}, "required": ["target"]},
            timeout_s=BUILTIN_TIMEOUT_S,
        )
    out["transfer_call"] = spec
    return dict(sorted(out.items()))
