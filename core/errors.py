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
