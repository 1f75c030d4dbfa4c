"""``botrun agent-sim``: run the local voice-agent simulator until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from botrun.core.logs import LEVELS

from .limits import (
    COUNT,
    DROP_AFTER_S,
    GO_AWAY_AFTER_S,
    PORT,
    READY_DELAY_S,
    RESUME_WINDOW_S,
    SPEED,
    problem,
)


class _Number(click.ParamType):
    """A finite number within ``bounds`` (core/sim/limits.py); ``inf`` and ``nan`` are refused.
    A bad value is botrun's one-line usage error (``botrun: error: --speed: ...``, exit 2)."""

    def __init__(self, bounds: tuple[float, float], *, integer: bool = False) -> None:
        self.bounds = bounds
        self.integer = integer
        self.name = "integer" if integer else "float"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from botrun.core.errors import UsageError

        flag = (param.opts[0] if param.opts else param.name) if param is not None else "value"
        try:
            number = int(str(value)) if self.integer else float(str(value))
        except ValueError:
            kind = "a whole number" if self.integer else "a number"
            raise UsageError(f"{flag}: {value!r} is not {kind}") from None
        why = problem(number, self.bounds)
        if why is not None:
            raise UsageError(f"{flag}: {why}")
        return number


@click.command(
    "agent-sim",
    help="Run a local voice-agent server (the AssemblyAI Voice Agent protocol, or with "
    "--protocol OpenAI Realtime or Gemini Live) for developing and testing bots without an "
    "account. Point a bot at the printed URL with --agent-url.",
    short_help="Run the local voice-agent simulator (no account needed).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=_Number(PORT, integer=True),
    metavar="PORT",
    help="TCP port (0..65535; 0 picks a free one).",
)
@click.option(
    "--scenario",
    "scenario_path",
    metavar="FILE",
    help="Scenario TOML file, or the name of a shipped one (e.g. 'weather').",
)
@click.option(
    "--api-key",
    envvar="BOTRUN_SIM_API_KEY",
    metavar="KEY",
    help="Require this key (Bearer header) or a token minted with it. [env: BOTRUN_SIM_API_KEY]",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=_Number(SPEED),
    metavar="X",
    help="Time factor for pacing and waits (2 = twice as fast as real time; 0.01..100).",
)
@click.option(
    "--resume-window",
    default=30.0,
    show_default=True,
    type=_Number(RESUME_WINDOW_S),
    metavar="SECONDS",
    help="Seconds a dropped session can be resumed (0..86400).",
)
@click.option(
    "--record",
    "record_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write each session's received audio (WAV) and events (JSON) to DIR (made at "
    "start; its parent must exist).",
)
@click.option(
    "--fail-first",
    type=_Number(COUNT, integer=True),
    default=None,
    metavar="K",
    help="Refuse the first K connections with server_error (overrides the scenario).",
)
@click.option(
    "--drop-at-audio",
    type=_Number(COUNT, integer=True),
    default=None,
    metavar="N",
    help="Drop each session's socket once, at its Nth reply.audio frame.",
)
@click.option(
    "--drop-after",
    type=_Number(DROP_AFTER_S),
    default=None,
    metavar="SECONDS",
    help="Drop each session's socket once, this long after session.ready (0..86400).",
)
@click.option(
    "--refuse-resume",
    is_flag=True,
    default=False,
    help="Answer every session.resume with session_not_found.",
)
@click.option(
    "--ready-delay",
    type=_Number(READY_DELAY_S),
    default=None,
    metavar="SECONDS",
    help="Delay session.ready (0..600).",
)
@click.option(
    "--protocol",
    type=click.Choice(["assemblyai", "openai", "gemini"]),
    default="assemblyai",
    show_default=True,
    help="The wire to speak: the Voice Agent API, OpenAI Realtime or Gemini Live (same "
    "behaviours and faults; point a bot with that [agent] backend at it).",
)
@click.option(
    "--go-away-after",
    type=_Number(GO_AWAY_AFTER_S),
    default=None,
    metavar="SECONDS",
    help="Gemini: send goAway this long after each connection's setup, then close it "
    "(the session stays resumable; 0.1..86400).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Logging verbosity.",
)
def command(
    host: str,
    port: int,
    scenario_path: str | None,
    api_key: str | None,
    speed: float,
    resume_window: float,
    record_dir: Path | None,
    fail_first: int | None,
    drop_at_audio: int | None,
    drop_after: float | None,
    refuse_resume: bool,
    ready_delay: float | None,
    protocol: str,
    go_away_after: float | None,
    log_level: str,
) -> None:
    from botrun.core.logs import setup_logging
    from botrun.core.secrets import register_secret

    from .scenario import Scenario, load_scenario

    register_secret(api_key)
    setup_logging(log_level)
    scenario = load_scenario(scenario_path) if scenario_path else Scenario()
    overrides = {
        "connect_error_count": fail_first,
        "drop_at_reply_audio": drop_at_audio,
        "drop_after_s": drop_after,
        "ready_delay_s": ready_delay,
        "refuse_resume": True if refuse_resume else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        faults = scenario.faults.model_copy(update=overrides)
        scenario = scenario.model_copy(update={"faults": faults})
    asyncio.run(
        _serve(
            scenario,
            host,
            port,
            api_key,
            speed,
            resume_window,
            record_dir,
            protocol,
            go_away_after,
        )
    )


async def _serve(
    scenario: object,
    host: str,
    port: int,
    api_key: str | None,
    speed: float,
    resume_window: float,
    record_dir: Path | None,
    protocol: str = "assemblyai",
    go_away_after: float | None = None,
) -> None:
    from .scenario import Scenario
    from .server import Simulator

    assert isinstance(scenario, Scenario)
    sim = Simulator(
        scenario,
        host=host,
        port=port,
        api_key=api_key,
        speed=speed,
        resume_window_s=resume_window,
        record_dir=record_dir,
        retain_audio=False,
        protocol=protocol,
        go_away_after_s=go_away_after,
    )
    await sim.start()
    click.echo(sim.url, err=False)
    click.echo(
        f"botrun agent-sim: serving scenario '{scenario.name}' on {sim.url}"
        + ("" if protocol == "assemblyai" else f", speaking {protocol}")
        + " (Ctrl-C to stop)",
        err=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
        click.echo(f"botrun agent-sim: stopped after {len(sim.sessions)} session(s)", err=True)
