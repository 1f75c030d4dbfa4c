"""Example bot: a customer-support agent that can look up orders.

Run it with any transport, e.g. ``botrun daily --room URL --config configs/support.toml``
(or ``botrun demo --config configs/support.toml`` with the local simulator). The order data
is a small bundled file (``data/orders.json``); a real bot would query its order system here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from botrun.core.tools import tool


@cache
def _orders() -> dict[str, dict[str, Any]]:
    text = resources.files("botrun.bots.examples").joinpath("data/orders.json").read_text()
    return json.loads(text)


def normalize_order_id(spoken: str) -> str:
    """Order ids as people say them ("a 1001", "A-1001", "a one thousand one" is out of
    scope) -> the stored form ("A1001")."""
    return re.sub(r"[^0-9A-Za-z]", "", spoken).upper()


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look up a customer's order: its status, items, carrier and delivery estimate.

    Use it whenever the caller asks where an order is or what is in it.

    Args:
        order_id: The order number the caller gives, like "A1001" (spaces, dashes and
            letter case do not matter).
    """
    key = normalize_order_id(order_id)
    order = _orders().get(key)
    if order is None:
        return {
            "found": False,
            "order_id": key,
            "message": "No order with that number. Ask the caller to check it (it looks like "
            "A1001: a letter followed by four digits).",
        }
    return {"found": True, "order_id": key, **order}
