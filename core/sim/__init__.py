"""Local voice-agent simulator (`botrun agent-sim`): a server that speaks the voice-agent
protocol on loopback, for tests, benchmarks, ``botrun demo`` and developing bots offline.

Public names (imported lazily, so ``botrun --help`` stays light)::

    from botrun.core.sim import Simulator, Scenario, SimSession, load_scenario
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scenario import Scenario, load_scenario
    from .server import Simulator
    from .session import SimSession

_EXPORTS = {
    "Simulator": ".server",
    "Scenario": ".scenario",
    "load_scenario": ".scenario",
    "SimSession": ".session",
}

__all__ = ["Scenario", "SimSession", "Simulator", "load_scenario"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
