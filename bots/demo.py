"""``botrun demo``: the whole path with no account — the local agent simulator, a bundled
spoken sample played as a meeting participant through the WAV transport, the live console,
a latency summary and the bot's voice recorded to ``demo-output.wav``.

With an example bot's config (``--config support``) the simulator plays that bot's scenario
(core/sim/scenarios/support.toml) and the caller's bundled sample asks what makes the agent
call the bot's tool, so the tool really runs and its result comes back in the reply."""

from __future__ import annotations

import asyncio
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from botrun.bots.cli import shared_options

if TYPE_CHECKING:
    from botrun.core.sim.scenario import Scenario

SAMPLE_TEXT = "Hello bot. Can you hear me? Please say this back to me."
SIM_PROTOCOLS = ("assemblyai", "openai", "gemini")  # what botrun agent-sim speaks
GREETING_S = 3.0  # lead-in before the caller speaks, when the greeting's length is unknown
#: What a bundled caller does besides speaking: calls from a phone number, and presses keys
#: (``SECONDS:DIGITS``, seconds into the sample). The receptionist's caller presses 9, which
#: is not on its keypad menu, once the bot has answered the first question.
CALLERS: dict[str, tuple[str, list[tuple[float, str]]]] = {
    "receptionist": ("+14155550123", [(6.5, "9")]),
}
READY_S = 1.0  # joining, session.ready and a margin before the greeting starts and ends
#: ``--agent-url`` of the commands that talk to the local simulator unless told otherwise
#: (``demo``, ``web``): the config's ``agent.url`` is not used by them.
SIM_AGENT_URL_HELP = (
    "Talk to the real voice agent at this WebSocket URL (needs the backend's key, e.g. "
    "ASSEMBLYAI_API_KEY) instead of the local simulator. Without it the local simulator "
    "answers, and the config's agent.url is NOT used (a note says so when the config sets one)."
)


def simulator_options(fn: Any) -> Any:
    """:func:`shared_options` with ``--agent-url`` described as a simulator command uses it."""
    return shared_options(fn, agent_url_help=SIM_AGENT_URL_HELP)


def ignored_url_note(cfg: Any) -> str | None:
    """The note printed when the config sets an ``agent.url`` that a simulator command does
    not use (``None`` when it does not set one)."""
    from botrun.core.plugins import get_backend
    from botrun.core.secrets import mask_url

    try:
        default = get_backend(cfg.agent.backend).default_url
    except Exception:  # an unknown backend is reported later, with its own message
        return None
    if cfg.agent.url == default:
        return None
    return (
        f"note: the local simulator answers; the config's agent.url ({mask_url(cfg.agent.url)}) "
        "is used only when passed as --agent-url"
    )


def demo_scenario(bundled_sample: bool) -> Any:
    """Echo replies; with the bundled sample the simulator also knows what was said."""
    from botrun.core.sim.scenario import scenario_from_dict

    if not bundled_sample:
        return None
    return scenario_from_dict(
        {
            "name": "demo",
            "turns": [
                {"user": SAMPLE_TEXT, "reply": "Sure. " + SAMPLE_TEXT, "audio": "echo"},
            ],
        }
    )


def sample_path(scenario: str | None = None) -> Path:
    """The bundled caller sample for a scenario (``assets/<name>-caller.wav``), or the
    default demo sample."""
    assets = resources.files("botrun.bots").joinpath("assets")
    if scenario is not None and assets.joinpath(f"{scenario}-caller.wav").is_file():
        return Path(str(assets.joinpath(f"{scenario}-caller.wav")))
    return Path(str(assets.joinpath("demo-hello.wav")))


def pick_scenario(choice: str | None, config_source: str) -> Scenario | None:
    """``--scenario`` (a shipped name or a file), else the shipped scenario named like the
    config (``support.toml`` -> ``support``), else ``None`` (the echo demo)."""
    from botrun.core.sim.scenario import builtin_scenarios, load_scenario

    if choice is not None:
        return load_scenario(choice)
    stem = Path(config_source).stem
    return load_scenario(stem) if stem in builtin_scenarios() else None


def lead_in_s(greeting: str, scenario: Scenario | None) -> float:
    """How long the caller waits before speaking: until the simulator's spoken greeting
    (a tone of ``ms_per_char`` per character) is over."""
    if scenario is None:
        from botrun.core.sim.scenario import Scenario

        scenario = Scenario()
    return READY_S + len(greeting) * scenario.reply.ms_per_char / 1000


@click.command("demo")
@simulator_options
@click.option(
    "--input",
    "input_wav",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Speak your own WAV file instead of the bundled sample.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("demo-output.wav"),
    show_default=True,
    help="Where to record the bot's voice.",
)
@click.option(
    "--scenario",
    metavar="NAME|FILE",
    help="Simulator scenario: a shipped one by name (echo, weather, support, receptionist, "
    "...) or a TOML file. Default: the one named like --config (support, scheduler, "
    "receptionist), else echo.",
)
def command(
    config: Path | None,
    agent_url: str | None,
    transcript: Path | None,
    log_level: str,
    name: str | None,
    backend: str | None,
    input_wav: Path | None,
    output: Path,
    scenario: str | None,
) -> None:
    """Talk to a local simulated voice agent through a simulated meeting (no account).

    The simulator answers by echoing what it heard, so the recording in --output is your
    sample played back by the bot, with the bot's real timing. With an example bot
    (--config support, scheduler or receptionist) it plays that bot's scenario instead:
    the bundled caller asks a question, the agent calls the bot's tool, and the tool's
    result comes back in the reply (the receptionist also checks in when the caller goes
    quiet, then says goodbye and hangs up). --backend openai or gemini runs the same demo
    with the simulator speaking that service's protocol. Pass --agent-url (and set the
    backend's key, e.g. ASSEMBLYAI_API_KEY) to talk to the real service with the same
    sample instead (without --agent-url the config's agent.url is not used)."""
    from botrun.bots.runner import (
        SharedOptions,
        agent_api_key,
        build_config,
        call,
        check_output_paths,
        written_paths,
    )
    from botrun.core.config import apply_overrides
    from botrun.core.logs import setup_logging
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets
    from botrun.transports.wav.plugin import SPEC
    from botrun.transports.wav.transport import WavTransport

    setup_logging(log_level)
    # Every credential in the environment or .env is masked from here on (console, logs,
    # transcript), whether the call goes to the simulator or to the real service.
    secrets = Secrets()
    shared = SharedOptions(config, agent_url, transcript, log_level, name, backend)
    cfg = build_config(shared, SPEC, list(transports()))
    if agent_url and scenario:
        raise click.UsageError("--scenario scripts the local simulator; drop it with --agent-url")
    if not agent_url and (note := ignored_url_note(cfg)):
        click.echo(note, err=True)
    sim_scenario = None if agent_url else pick_scenario(scenario, cfg.source)
    if sim_scenario is None and not agent_url:
        sim_scenario = demo_scenario(input_wav is None)
    sample = input_wav or sample_path(sim_scenario.name if sim_scenario else None)
    # You join, the bot greets you, and you start talking once the greeting is over.
    wait_s = GREETING_S if agent_url else lead_in_s(cfg.agent.greeting, sim_scenario)
    opts: dict[str, Any] = {"input": [sample], "output": output, "participant": ["you"]}
    caller = CALLERS.get(sim_scenario.name) if sim_scenario and input_wav is None else None
    if caller is not None:
        number, keys = caller
        opts["phone"] = [number]
        opts["dtmf"] = ",".join(f"{wait_s + at:.2f}:{digits}" for at, digits in keys)
    # Like `botrun wav`: --output and --transcript are not one file, nor an input, and
    # --transcript's directory exists (one-line usage errors before anything runs).
    check_output_paths(shared, {"--output": output})
    transport = WavTransport.from_options(opts)
    transport.check_written_paths(written_paths(shared))
    lead_in = bytes(int(wait_s * transport.output_sample_rate) * 2)
    for inp in transport.inputs:
        inp.pcm = lead_in + inp.pcm

    async def run() -> int:
        if agent_url:
            key = agent_api_key(cfg.agent.url, secrets, cfg.agent.backend)
            summary = await call(transport, cfg, key, transcript)
        else:
            from botrun.core.sim import Simulator

            protocol = cfg.agent.backend if cfg.agent.backend in SIM_PROTOCOLS else None
            if protocol is None:
                raise click.UsageError(
                    f"the simulator does not speak the {cfg.agent.backend} backend's protocol: "
                    "pass --agent-url (and its key) to use the real service"
                )
            async with Simulator(sim_scenario, protocol=protocol) as sim:
                what = f" (scenario '{sim_scenario.name}')" if sim_scenario else ""
                wire = "" if protocol == "assemblyai" else f", speaking {protocol}"
                click.echo(f"agent simulator listening on {sim.url}{what}{wire}")
                local = apply_overrides(cfg, {"agent.url": sim.url})
                summary = await call(transport, local, None, transcript)
        if summary.error is not None:
            raise summary.error
        return int(summary.exit_code)  # 130 after Ctrl-C, like every transport command

    code = asyncio.run(run())
    click.echo(f"bot voice recorded to {output}")
    if code:
        sys.exit(code)
