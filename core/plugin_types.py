"""Light data types a plugin module uses to describe itself (no heavy imports here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import BotConfig
    from .secrets import Secrets
    from .transport import Transport


@dataclass(frozen=True)
class Option:
    """One transport option. It is both a CLI flag (``--join-timeout``) and a key of the
    transport's table in the bot config (``[daily] join_timeout = 30``); the flag wins."""

    name: str  # python identifier; the flag is --name-with-dashes
    help: str
    type: type = str  # str, int, float, bool or pathlib.Path
    default: Any = None
    required: bool = False
    multiple: bool = False
    choices: tuple[str, ...] | None = None
    envvar: str | None = None  # read from the environment (or .env) when not given
    secret: bool = False  # value is registered for redaction and never shown in help
    min: float | None = None
    max: float | None = None
    config: bool = True  # settable from the config file's transport table
    metavar: str | None = None
    # A repeatable option that belongs to the repeatable option named here, given before
    # it on the command line (``--input b.wav --at 2.5``): its values arrive aligned with
    # that option's, ``None`` where one was not given. In a config table: by position.
    follows: str | None = None
    # What is wrong with one given value (each value of a repeatable option), or None: the
    # transport's own check, run by the fleet front door before it queues a job (the
    # transport itself checks again when it starts).
    check: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class TransportContext:
    """What a transport factory receives."""

    options: dict[str, Any]  # validated: config table merged with CLI flags
    config: BotConfig
    secrets: Secrets
    bot_name: str


@dataclass(frozen=True)
class TransportSpec:
    """A transport a plugin contributes: ``botrun <name>``."""

    name: str
    help: str  # one line, shown in ``botrun --help``
    factory: Callable[[TransportContext], Transport]
    options: tuple[Option, ...] = field(default_factory=tuple)
    description: str = ""  # longer text for ``botrun <name> --help``
    # Defaults for [bridge] keys this transport wants unless the user set them
    # (e.g. the WAV transport leaves as soon as the inputs end).
    bridge_defaults: dict[str, Any] = field(default_factory=dict)
    # Set for a transport that ``botrun <name>`` cannot run (Twilio's calls run inside
    # ``botrun serve``): why and what runs it, the command's one-line error. Its command
    # then takes no options, and ``botrun --help`` lists it apart from joinable transports.
    runs_elsewhere: str = ""
    # What is wrong with options whose lists pair by position (a fleet job's JSON options,
    # like a config table: e.g. one ``at`` per ``input``), or None. ``label(name)`` names an
    # option in the message. The fleet front door runs it before it queues a job (the
    # transport checks its config table with the same function when it starts).
    check_paired: Callable[[dict[str, Any], Callable[[str], str]], str | None] | None = None
