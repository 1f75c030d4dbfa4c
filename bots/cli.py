"""``botrun``: the command line. Transport commands come from plugins; imports stay lazy so
``botrun --help`` never loads SciPy or a meeting SDK."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from botrun.core.defaults import DEFAULT_AGENT_URL
from botrun.core.logs import LEVELS
from botrun.core.plugin_types import Option, TransportSpec

#: Built-in commands that are not transports: name -> ("module:attr" of a click command,
#: one-line help). Imported only when the command runs or shows its own help.
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "agent-sim": (
        "botrun.core.sim.cli:command",
        "Run the local voice-agent simulator (no account needed).",
    ),
    "call": (
        "botrun.bots.call:command",
        "Place a phone call through Twilio to the bot `botrun serve` runs.",
    ),
    "demo": ("botrun.bots.demo:command", "Try botrun with no account: simulator + WAV sample."),
    "report": (
        "botrun.bots.report_cli:command",
        "Render a recorded call (--record DIR) as one HTML timeline.",
    ),
    "serve": (
        "botrun.bots.serve.cli:command",
        "Answer Daily dial-in and Twilio webhooks and run one bot per call.",
    ),
    "web": (
        "botrun.bots.web:command",
        "Talk to your bot from a browser page (simulator by default).",
    ),
    "worker": (
        "botrun.bots.worker.cli:command",
        "Run calls from the fleet's queue (serve --queue) in warm bot processes.",
    ),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("botrun")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def shared_options(fn: Any, record: bool = False, agent_url_help: str | None = None) -> Any:
    """Options every transport command (and ``demo``) shares; ``record``: also
    ``--record DIR`` (every transport command has it); ``agent_url_help``: what
    ``--agent-url`` does for a command that does not use it the usual way (``demo``)."""
    opts = [
        click.option(
            "--config",
            "config",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Bot configuration: a TOML file, or a packaged config by name (support, "
            "scheduler, receptionist). Default: every key at its default (see "
            "configs/default.toml).",
        ),
        click.option(
            "--agent-url",
            metavar="URL",
            help=agent_url_help
            or f"Voice-agent WebSocket URL [default: the config's agent.url, else the "
            f"backend's ({DEFAULT_AGENT_URL} for assemblyai)].",
        ),
        click.option(
            "--transcript",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Append the conversation to FILE as JSON Lines.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(LEVELS, case_sensitive=False),
            default="warning",
            show_default=True,
            help="Logging verbosity (the live console shows the call either way).",
        ),
        click.option("--name", metavar="NAME", help="The bot's display name in the meeting."),
        click.option(
            "--backend",
            metavar="NAME",
            help="Voice-agent service: assemblyai, openai, gemini or a plugin's [default: the "
            "config's agent.backend, assemblyai]. See docs/backends.md.",
        ),
    ]
    if record:
        opts.append(
            click.option(
                "--record",
                type=click.Path(path_type=Path, file_okay=False),
                help="Record the call to DIR: the participants' mix and the bot's voice as WAV, "
                "the events as JSON Lines (render it with `botrun report DIR`).",
            )
        )
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _click_option(opt: Option) -> click.Option:
    if opt.type is bool and not opt.multiple:
        decl = [f"{opt.flag}/--no-{opt.name.replace('_', '-')}", opt.name]
        typ: Any = bool
    else:
        decl = [opt.flag, opt.name]
        if opt.choices:
            typ = click.Choice(opt.choices)
        elif opt.type is Path:
            typ = click.Path(path_type=Path)
        else:
            typ = opt.type
    help_text = opt.help
    if opt.default not in (None, (), []) and not opt.secret:
        help_text += f" [default: {opt.default}]"
    if opt.envvar:
        help_text += f" [env: {opt.envvar}]"
    if opt.required:
        help_text += " [required]"
    return click.Option(
        decl,
        type=typ,
        default=None,
        multiple=opt.multiple,
        help=help_text,
        metavar=opt.metavar,
        show_default=False,
    )


_ORDER = "botrun.option_order"


class TransportCommand(click.Command):
    """A transport's command. It remembers the order options were given in, so an option
    declared ``follows`` (``--at``) applies to the option before it (``--input``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        ctx.meta[_ORDER] = [p.name for p in order]
        return super().parse_args(ctx, args)


def follow(opt: Option, anchor: Option, order: list[str], values: tuple[Any, ...]) -> Any:
    """Align ``opt``'s values with ``anchor``'s: each belongs to the last ``anchor`` given
    before it (``None`` for an anchor without one). Unchanged when ``anchor`` came only from
    the config file."""
    n = order.count(anchor.name)
    if not values or n == 0:
        return values
    out: list[Any] = [None] * n
    i, k = -1, 0
    for name in order:
        if name == anchor.name:
            i += 1
        elif name == opt.name:
            if i < 0:
                raise click.UsageError(
                    f"{opt.flag} {values[k]} comes before any {anchor.flag}: put it after the "
                    f"{anchor.flag} it belongs to"
                )
            if out[i] is not None:
                raise click.UsageError(f"two {opt.flag} values for {anchor.flag} number {i + 1}")
            out[i] = values[k]
            k += 1
    return out


def config_only_command(spec: TransportSpec) -> click.Command:
    """``botrun NAME`` for a transport another command runs (``spec.runs_elsewhere``): its
    help says so and lists the config table's keys; running it is that one-line error."""

    def callback() -> None:
        from botrun.core.errors import UsageError

        raise UsageError(spec.runs_elsewhere)

    keys = [f"{o.name}: {o.help}" for o in spec.options]
    text = "\n\n".join(
        [
            spec.description or spec.help,
            f"This command runs no call: {spec.runs_elsewhere}",
            *(
                [f"\b\nKeys of the config's [{spec.name}] table:\n" + "\n".join(keys)]
                if keys
                else []
            ),
        ]
    )
    return click.Command(
        spec.name,
        callback=callback,
        help=text,
        short_help=spec.help,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def transport_command(spec: TransportSpec) -> click.Command:
    if spec.runs_elsewhere:
        return config_only_command(spec)
    by_name = {o.name: o for o in spec.options}

    def callback(**kwargs: Any) -> None:
        from botrun.bots.runner import SharedOptions, run_transport

        shared = SharedOptions(
            config=kwargs.pop("config"),
            agent_url=kwargs.pop("agent_url"),
            transcript=kwargs.pop("transcript"),
            log_level=kwargs.pop("log_level"),
            name=kwargs.pop("name"),
            backend=kwargs.pop("backend"),
            record=kwargs.pop("record"),
        )
        order = click.get_current_context().meta.get(_ORDER, [])
        for opt in spec.options:
            if opt.follows in by_name:
                kwargs[opt.name] = follow(opt, by_name[opt.follows], order, kwargs[opt.name])
        code = run_transport(spec, shared, kwargs)
        if code:
            sys.exit(code)

    cmd = TransportCommand(
        spec.name,
        callback=callback,
        help=spec.description or spec.help,
        short_help=spec.help,
        params=[_click_option(o) for o in spec.options],
    )
    return shared_options(cmd, record=True)  # click decorators also work on Command objects


class BotrunGroup(click.Group):
    """Lists transports from plugins and built-in commands without importing them."""

    def _transports(self) -> dict[str, TransportSpec]:
        from botrun.core.plugins import transports

        return transports()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self._transports(), *sorted(BUILTIN_COMMANDS)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        specs = self._transports()
        if name in specs:
            return transport_command(specs[name])
        if name in BUILTIN_COMMANDS:
            from importlib import import_module

            mod, _, attr = BUILTIN_COMMANDS[name][0].partition(":")
            return getattr(import_module(mod), attr)
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        specs = self._transports()
        rows_t = [(n, s.help) for n, s in specs.items() if not s.runs_elsewhere]
        rows_e = [(n, s.help) for n, s in specs.items() if s.runs_elsewhere]
        rows_b = [(n, h) for n, (_, h) in sorted(BUILTIN_COMMANDS.items())]
        if rows_t:
            with formatter.section("Transports (join a meeting)"):
                formatter.write_dl(rows_t)
        if rows_e:
            with formatter.section("Transports run by other commands (config tables)"):
                formatter.write_dl(rows_e)
        if rows_b:
            with formatter.section("Commands"):
                formatter.write_dl(rows_b)


@click.group(cls=BotrunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="botrun")
def cli() -> None:
    """botrun puts a speech-to-speech voice agent into real meetings.

    \b
    Try it with no account:   botrun demo
    Join a Daily room:        botrun daily --room https://you.daily.co/room
    Join an Agora channel:    botrun agora --channel NAME
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure a user can cause ends in one clear line."""
    from botrun.core.errors import BotrunError

    try:
        cli.main(args=argv, prog_name="botrun", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("botrun: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("botrun: interrupted", err=True)
        sys.exit(130)
    except BotrunError as exc:
        from botrun.core.secrets import redact

        click.echo(f"botrun: error: {redact(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        import logging

        from botrun.core.secrets import redact

        logging.getLogger("botrun").debug("internal error", exc_info=True)
        click.echo(
            f"botrun: internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(run with --log-level debug for details)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
