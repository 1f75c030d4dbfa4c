"""Checks a job's options at the front door, the way ``botrun <transport>`` would: the same
click command converts them (types, choices, the order of ``follows`` options) and the
transport's declared ranges are checked as :func:`botrun.core.config.transport_options`
checks them, then its required options and each option's own ``check`` (as the
transport checks them when it starts). Lists pair by position, as in the transport's
config table, and the transport's own rule for them (``spec.check_paired``: the wav
transport's one value per input) is checked first. A bad value is the API caller's 400 naming the
option, not a job that fails later on a worker with its usage text."""

from __future__ import annotations

from typing import Any

from botrun.core.plugin_types import TransportSpec

from . import jobs


def problem(spec: TransportSpec, options: Any, shared: tuple[str, ...]) -> str | None:
    """Why ``options`` cannot be a job's options for ``spec`` (None: they can; queue them
    as :func:`ordered` puts them). ``shared``: the shared options (``name``, ...) a job of
    it may also set."""
    import click

    from botrun.bots.cli import _ORDER, TransportCommand, follow, transport_command
    from botrun.core.config import option_value_errors, suggest

    if not isinstance(options, dict):
        return "'options' must be an object"
    own = {o.name: o for o in spec.options}
    known = [*own, *shared]
    for name, value in options.items():
        if name not in known:
            return f"{spec.name} has no option {name!r}{suggest(str(name), known)}"
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | float | bool) for v in values):
            return f"option {name!r} must be a string, number or boolean, or a list of them"
        opt = own.get(name)
        if isinstance(value, list) and (opt is None or not opt.multiple):
            return f"option {name!r} takes one value, not a list"
    if spec.check_paired is not None:  # lists pair by position, as in the config table
        wrong = spec.check_paired(options, lambda name: f"option {name!r}")
        if wrong:
            return wrong
    options = ordered(spec, options)
    command = transport_command(spec)
    assert isinstance(command, TransportCommand)
    try:
        with command.make_context(spec.name, jobs.option_argv(options)) as ctx:
            order = ctx.meta.get(_ORDER, [])
            converted: dict[str, Any] = {}
            for name in options:
                value = ctx.params.get(name)
                opt = own.get(name)
                if opt is not None and opt.follows in own:
                    value = follow(opt, own[opt.follows], order, tuple(value or ()))
                if opt is not None:
                    converted[name] = list(value) if opt.multiple else value
    except click.BadParameter as exc:
        name = exc.param.name if exc.param is not None else "?"
        return f"option {name!r}: {exc.message}"
    except click.BadOptionUsage as exc:  # a flag without its value: "speed": true
        name = exc.option_name.lstrip("-").replace("-", "_")
        if "requires an argument" in exc.message:
            return f"option {name!r}: needs a value"
        return f"option {name!r}: {exc.message}"
    except click.ClickException as exc:
        return exc.message
    for name, expected in option_value_errors(spec, converted):
        return f"option {name!r}: {expected}"
    # What the command checks after click: required options, then each option's own check
    # (the wav transport's --dtmf schedule and --phone numbers).
    for opt in spec.options:
        value = converted.get(opt.name)
        if opt.required and value in (None, []):
            return f"option {opt.name!r} is required"
        if opt.check is not None and value is not None:
            for v in value if opt.multiple else [value]:
                wrong = opt.check(v) if v is not None else None
                if wrong:
                    return f"option {opt.name!r}: {wrong}"
    return None


def ordered(spec: TransportSpec, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` in the order ``spec`` declares them (then the shared ones): an option
    that ``follows`` another comes after it in the worker's command line, whatever order
    the API caller's JSON object had (:func:`.jobs.option_argv` pairs lists by position)."""
    rank = {o.name: i for i, o in enumerate(spec.options)}
    return dict(sorted(options.items(), key=lambda kv: rank.get(kv[0], len(rank))))
