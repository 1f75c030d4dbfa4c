"""Exceptions that end a command with a clear one-line message instead of a traceback."""

from __future__ import annotations


class BotrunError(Exception):
    """A failure the user can act on. The CLI prints ``str(exc)`` (secrets redacted) and exits
    with :attr:`exit_code`."""

    exit_code: int = 1


class UsageError(BotrunError):
    """Bad command line, configuration or missing credentials: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file is missing, unreadable, not TOML, or fails validation."""


class MissingSecretError(UsageError):
    """A required secret is not in the environment (or ``.env``)."""

    def __init__(self, variable: str, purpose: str) -> None:
        super().__init__(
            f"{variable} is not set: it is needed {purpose}. "
            f"Export it in your shell or put `{variable}=...` in a .env file in this directory."
        )
        self.variable = variable


class TransportError(BotrunError):
    """The meeting transport failed (join refused, connection lost, kicked, ...)."""


class AgentError(BotrunError):
    """The voice-agent service failed in a way retries cannot fix (bad key, refused, ...)."""


class CallActionError(BotrunError):
    """A call action (hang up, transfer, DTMF, dial-out, ...) failed or was refused.

    Raised by :class:`botrun.core.call.CallContext` actions and by transports. Inside a tool
    it becomes the tool's error result, which the agent hears about; in a hook it is logged.
    """


class ActionUnsupported(CallActionError):
    """The transport cannot perform this action (e.g. DTMF on the WAV transport without a
    schedule, transfer on Agora). The message names the transport and the action."""

    def __init__(self, transport: str, action: str, hint: str = "") -> None:
        detail = f": {hint}" if hint else ""
        super().__init__(f"the {transport} transport cannot {action}{detail}")
        self.transport = transport
        self.action = action
