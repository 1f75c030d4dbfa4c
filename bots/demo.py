"""``botrun demo``: the whole path with no account — the local agent simulator, a bundled
spoken sample played as a meeting participant through the WAV transport, the live console,
a latency summary and the bot's voice recorded to ``demo-output.wav``."""

from __future__ import annotations

import asyncio
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from botrun.bots.cli import shared_options

SAMPLE_TEXT = "Hello bot. Can you hear me? Please say this back to me."
GREETING_S = 3.0  # the packaged greeting lasts about 2.2 s in the simulator


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


def sample_path() -> Path:
    return Path(str(resources.files("botrun.bots").joinpath("assets/demo-hello.wav")))


@click.command("demo")
@shared_options
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
def command(
    config: Path | None,
    agent_url: str | None,
    transcript: Path | None,
    log_level: str,
    name: str | None,
    input_wav: Path | None,
    output: Path,
) -> None:
    """Talk to a local simulated voice agent through a simulated meeting (no account).

    The simulator answers by echoing what it heard, so the recording in --output is your
    sample played back by the bot, with the bot's real timing. Pass --agent-url (and set
    ASSEMBLYAI_API_KEY) to talk to the real service with the same sample instead."""
    from botrun.bots.runner import SharedOptions, agent_api_key, build_config, call
    from botrun.core.config import apply_overrides
    from botrun.core.logs import setup_logging
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets
    from botrun.transports.wav.plugin import SPEC
    from botrun.transports.wav.transport import WavTransport

    setup_logging(log_level)
    shared = SharedOptions(config, agent_url, transcript, log_level, name)
    cfg = build_config(shared, SPEC, list(transports()))
    transport = WavTransport.from_options(
        {"input": [input_wav or sample_path()], "output": output, "participant": ["you"]}
    )
    # You join, the bot greets you, and you start talking once the greeting is over.
    lead_in = bytes(int(GREETING_S * transport.output_sample_rate) * 2)
    for inp in transport.inputs:
        inp.pcm = lead_in + inp.pcm

    async def run() -> int:
        if agent_url:
            key = agent_api_key(cfg.agent.url, Secrets())
            summary = await call(transport, cfg, key, transcript)
        else:
            from botrun.core.sim import Simulator

            async with Simulator(demo_scenario(input_wav is None)) as sim:
                click.echo(f"agent simulator listening on {sim.url}")
                local = apply_overrides(cfg, {"agent.url": sim.url})
                summary = await call(transport, local, None, transcript)
        if summary.error is not None:
            raise summary.error
        return int(summary.exit_code)  # 130 after Ctrl-C, like every transport command

    code = asyncio.run(run())
    click.echo(f"bot voice recorded to {output}")
    if code:
        sys.exit(code)
