"""``botrun web``: talk to your bot from a browser page, call after call.

Against the local simulator by default (no account; it echoes what you say, or plays the
scenario named like ``--config``), or the real service with ``--agent-url`` and a key. Each
call is recorded under ``--record`` and its report (``botrun report``) is offered on the page
once the call is over. One call at a time: a second tab is told the bot is busy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from botrun.bots.demo import simulator_options

log = logging.getLogger("botrun.web")


def call_dir_name(n: int) -> str:
    """The folder of call ``n``, named after now (when a page takes the call: page_call)."""
    return datetime.now(UTC).strftime("call-%Y%m%d-%H%M%S") + f"-{n}"


def page_call(server: Any, n: int, record: Path | None) -> Any:
    """The transport of ``botrun web``'s call ``n``: the browser transport, whose call starts
    when a page takes it, not when it begins to wait. Then the call's clock (the console's
    call length, ``max_duration_s``: the bridge restarts it, ``call_starts_at_join``) starts,
    and its recording folder is named (``call-<that time>-<n>``): the console, the folder and
    the report all count from the call, not from the wait."""
    from botrun.transports.browser.transport import BrowserTransport

    class PageCall(BrowserTransport):
        folder: Path | None = None  # the call's recording folder, once a page took it

        async def attach(self, ws: Any) -> None:
            events = self._events  # (the bridge: it joined this transport)
            # The recorder that starts at the join (core/recording.RecorderOnJoin) was given
            # --record itself (its parent exists: nothing is made while the call waits); the
            # call's folder, made when it records its first event, is named now.
            taps = getattr(events, "taps", None)
            if record is not None and taps is not None and getattr(taps, "recorder", 0) is None:
                taps.directory = self.folder = record / call_dir_name(n)
            await super().attach(ws)

    return PageCall(server)


async def serve_calls(
    server: Any,
    cfg: Any,
    key: str | None,
    *,
    record: Path | None,
    transcript: Path | None = None,
    max_calls: int = 0,
    console: bool = True,
    signals: bool = True,
) -> int:
    """Run calls with pages on ``server`` until Ctrl-C (or ``max_calls`` calls). Returns the
    exit code (130 after Ctrl-C)."""
    from botrun.bots.runner import call

    n = made = 0
    while True:
        n += 1
        transport = page_call(server, n, record)
        # (the call's own folder in --record is named when a page takes it: page_call)
        summary = await call(
            transport, cfg, key, transcript, console, signals=signals, record=record,
            unattended=None,
        )  # fmt: skip
        where = transport.folder  # (None: nobody came, nothing was recorded)
        if transport.attached:
            made += 1
        if summary.error is not None:
            raise summary.error
        if where is not None and where.is_dir():  # (a call cut by Ctrl-C has its report too)
            await report_call(where, console)
        if summary.reason in ("SIGINT", "SIGTERM"):
            if console:
                click.echo(calls_made(made, record))
            return int(summary.exit_code)
        if max_calls and n >= max_calls:
            return 0


def calls_made(made: int, record: Path | None) -> str:
    """What ``botrun web`` printed at its end: how many calls were made."""
    if not made:
        return "no call was made (nobody opened the page)"
    where = f"; recorded under {record}" if record is not None else ""
    return f"{made} call{'' if made == 1 else 's'} made{where}"


async def report_call(where: Path, console: bool) -> None:
    """Write the finished call's report (the page links it); a failure is only logged."""
    from botrun.bots.report import write_report

    try:
        path, _ = await asyncio.to_thread(write_report, where)
    except Exception as exc:
        log.warning("could not write the report of %s: %s", where, exc)
        return
    if console:
        click.echo(f"call recorded to {where}; report: {path}")


def check_record_dir(record: Path) -> bool:
    """``--record`` can hold call folders: a :class:`UsageError` (one line, exit 2) if not.
    Nothing is left on disk (a call makes its folder when it starts); True when ``record``
    did not exist, so that ``botrun web`` removes it at the end if no call was made."""
    from botrun.core.errors import UsageError

    if record.is_dir():
        if not os.access(record, os.W_OK | os.X_OK):
            raise UsageError(f"cannot record to {record}: Permission denied")
        return False
    if record.exists():
        raise UsageError(f"cannot record to {record}: Not a directory")
    try:
        record.mkdir()
        record.rmdir()
    except OSError as exc:
        raise UsageError(f"cannot record to {record}: {exc.strerror or exc}") from None
    return True


def announce(server: Any) -> None:
    lines = server.open_lines()
    lines[0] += " (Ctrl-C to stop)"
    for line in lines:
        click.echo(line)


@click.command("web")
@simulator_options  # (--agent-url: the simulator unless given; the config's agent.url unused)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Interface to serve the page on (0.0.0.0: every interface, with the token).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=7870,
    show_default=True,
    help="Port of the page (0 picks a free one).",
)
@click.option(
    "--scenario",
    metavar="NAME|FILE",
    help="Simulator scenario (a shipped name or a TOML file). Default: the one named like "
    "--config, else echo.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("botrun-calls"),
    show_default=True,
    help="Each call is recorded to DIR/call-<start time>-<n>/ (made when a page starts the "
    "call) with its report.html.",
)
def command(
    config: Path | None,
    agent_url: str | None,
    transcript: Path | None,
    log_level: str,
    name: str | None,
    backend: str | None,
    host: str,
    port: int,
    scenario: str | None,
    record: Path,
) -> None:
    """Talk to your bot from a browser page, with your own microphone.

    Serves a page on http://127.0.0.1:7870 (the printed URL carries its access token).
    Without --agent-url the bot talks to the local agent simulator, which echoes what you
    say (no account needed). Space mutes, Esc hangs up; each finished call's report is
    linked on the page. One call at a time: a second tab is told the bot is busy."""
    from botrun.bots.demo import SIM_PROTOCOLS, ignored_url_note, pick_scenario
    from botrun.bots.runner import (
        SharedOptions,
        agent_api_key,
        build_config,
        check_output_paths,
    )
    from botrun.core.config import apply_overrides
    from botrun.core.logs import setup_logging
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets
    from botrun.transports.browser.plugin import SPEC
    from botrun.transports.browser.server import PageServer, check_host

    setup_logging(log_level)
    # Every secret from the environment and .env is registered for masking (logs, console,
    # transcript, recording), whichever agent the calls talk to: a tool may quote one.
    secrets = Secrets()
    shared = SharedOptions(config, agent_url, transcript, log_level, name, backend)
    cfg = build_config(shared, SPEC, list(transports()))
    if agent_url and scenario:
        raise click.UsageError("--scenario scripts the local simulator; drop it with --agent-url")
    if not agent_url and (note := ignored_url_note(cfg)):
        click.echo(note, err=True)
    if not check_host(host):
        click.echo(
            f"warning: serving on {host}: anyone who can reach it with the token can talk to "
            "the bot; browsers allow the microphone only on https or localhost pages",
            err=True,
        )
    sim_scenario = None if agent_url else pick_scenario(scenario, cfg.source)
    protocol = cfg.agent.backend if cfg.agent.backend in SIM_PROTOCOLS else None
    if not agent_url and protocol is None:
        raise click.UsageError(
            f"the simulator does not speak the {cfg.agent.backend} backend's protocol: "
            "pass --agent-url (and its key) to use the real service"
        )

    # the --record folder may be created (each call gets a folder in it), not its parent
    check_output_paths(SharedOptions(transcript=transcript, record=record))
    made_record = check_record_dir(record)

    async def run() -> int:
        server = PageServer(host, port, calls_dir=record)
        await server.start()
        try:
            if agent_url:
                key = agent_api_key(cfg.agent.url, secrets, cfg.agent.backend)
                announce(server)
                return await serve_calls(server, cfg, key, record=record, transcript=transcript)
            from botrun.core.sim import Simulator

            assert protocol is not None  # (checked above)
            async with Simulator(sim_scenario, protocol=protocol) as sim:
                what = f"scenario '{sim_scenario.name}'" if sim_scenario else "it echoes you"
                wire = "" if protocol == "assemblyai" else f", speaking {protocol}"
                click.echo(f"agent simulator listening on {sim.url} ({what}{wire})")
                announce(server)
                local = apply_overrides(cfg, {"agent.url": sim.url})
                return await serve_calls(server, local, None, record=record, transcript=transcript)
        finally:
            await server.stop()
            if made_record:  # no call was made: nothing of ours is left on disk
                with contextlib.suppress(OSError):
                    record.rmdir()  # (only when empty)

    code = asyncio.run(run())
    if code:
        sys.exit(code)
