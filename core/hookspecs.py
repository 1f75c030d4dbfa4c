"""The botrun plugin hooks (pluggy). A package contributes by registering a module or object
under the ``botrun`` entry-point group that implements any of these hooks. The built-in
transports are registered exactly like third-party ones (see pyproject.toml).

Plugin modules are imported to build ``botrun --help``: keep them light and import SDKs
only inside the transport factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backends.base import BackendSpec
    from .events import BridgeEvent
    from .plugin_types import TransportSpec

hookspec = pluggy.HookspecMarker("botrun")
hookimpl = pluggy.HookimplMarker("botrun")


@hookspec
def botrun_transports() -> list[TransportSpec]:
    """Return the transports this plugin provides (each becomes a ``botrun NAME`` command)."""
    return []


@hookspec
def botrun_backends() -> list[BackendSpec]:
    """Return the voice-agent services this plugin provides (each selectable with
    ``[agent] backend = "<name>"``): a :class:`botrun.core.backends.base.BackendSpec` whose
    factory opens one agent session. Keep the module light: import the client inside it."""
    return []


@hookspec
def botrun_tools() -> list[Callable[..., Any]]:
    """Return callables to offer the agent as tools (in addition to the config's ``tools``).

    Each is a plain or async function; its JSON schema is derived from type hints and the
    docstring unless it carries a ``__botrun_tool__`` :class:`botrun.core.tools.ToolSpec`."""
    return []


@hookspec
def botrun_observe(event: BridgeEvent) -> None:
    """Called on the event loop for every bridge event: one frozen dataclass per kind
    (:mod:`botrun.core.events`: ``ParticipantJoined``, ``UserTranscript``,
    ``AgentTranscript``, ``ReplyStarted``, ``ReplyDone``, ``ReplyInterrupted``,
    ``ToolCalled``, ``TurnMetrics``, ``SessionStateChanged``, ``ErrorOccurred``, ...).
    Dispatch with ``match``/``isinstance``, or on ``event.kind`` (a string); ``event.time``
    is when it happened and ``event.data`` its fields as a dict. Must return quickly
    (no blocking I/O: hand writes to a thread); exceptions are logged and ignored."""
