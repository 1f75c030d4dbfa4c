"""click options that ``botrun serve`` and ``botrun worker`` share: one definition each, the
help text (which differs where the commands differ) passed in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from botrun.core.logs import LEVELS

F = TypeVar("F", bound=Callable[..., Any])


def number_option(
    *decls: str, default: float, low: float, high: float, help: str
) -> Callable[[F], F]:
    """A number within ``low``..``high`` (an int default: whole numbers), default shown."""
    kind: click.ParamType = (
        click.IntRange(int(low), int(high))
        if isinstance(default, int)
        else click.FloatRange(low, high)
    )
    return click.option(*decls, default=default, show_default=True, type=kind, help=help)


def host_option(help: str) -> Callable[[F], F]:
    return click.option("--host", default="127.0.0.1", show_default=True, help=help)


def port_option(default: int, help: str) -> Callable[[F], F]:
    return number_option("--port", default=default, low=0, high=65535, help=help)


def config_option() -> Callable[[F], F]:
    return click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Bot configuration (TOML) passed to every bot.",
    )


def bot_max_duration_option(help: str) -> Callable[[F], F]:
    return number_option("--bot-max-duration-s", default=3600.0, low=1, high=24 * 3600, help=help)


def insecure_option(help: str) -> Callable[[F], F]:
    return click.option("--insecure", is_flag=True, help=help)


def log_level_option() -> Callable[[F], F]:
    return click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        help="Logging verbosity.",
    )
