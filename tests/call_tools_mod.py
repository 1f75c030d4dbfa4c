"""Tools for tests/test_call_units.py: CallContext imported only for type checking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botrun.core.tools import tool

if TYPE_CHECKING:
    from botrun.core.call import CallContext


@tool
async def where(city: str, ctx: CallContext, units: str = "metric") -> dict[str, Any]:
    """Weather for a city.

    Args:
        city: The city.
        units: metric or imperial.
    """
    return {"city": city, "call": None if ctx is None else ctx.call_id, "units": units}


@tool(timeout_s=0.5)
async def hang_up_now(ctx: CallContext) -> str:
    """Hang up (awaits the hang-up, longer than this tool may run)."""
    await ctx.hang_up("caller asked")
    return "done"


@tool
def sync_send_tones(digits: str, ctx: CallContext) -> str:
    """Press keys (a sync tool acting on the call).

    Args:
        digits: The keys.
    """
    ctx.send_dtmf(digits)
    return f"sent {digits}"
