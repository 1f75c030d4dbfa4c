"""Registers the built-in ``wav`` transport (light module: imported by ``botrun --help``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from botrun.core.transport import Transport


def _factory(ctx: TransportContext) -> Transport:
    from .transport import WavTransport

    return WavTransport.from_options(ctx.options)


SPEC = TransportSpec(
    name="wav",
    help="Play WAV files as meeting participants; record the bot to a WAV file.",
    description=(
        "Each --input is a participant who speaks its file in real time, starting at the "
        "matching --at offset (seconds), and leaves when the file ends. The bot's voice is "
        "recorded to --output at the meeting rate with true timing (silence while it is "
        "quiet). --speed N runs N times faster than real time (use a simulator at the same "
        "speed). Any WAV sample rate, width or channel count is converted."
    ),
    factory=_factory,
    options=(
        Option(
            "input",
            "A WAV file spoken by one participant (repeatable).",
            type=Path,
            multiple=True,
            required=True,
            metavar="WAV",
        ),
        Option(
            "at",
            "When the matching --input starts, in seconds (repeatable; default 0).",
            type=float,
            multiple=True,
            min=0,
            metavar="SECONDS",
        ),
        Option(
            "participant",
            "Display name of the matching --input (default: file name).",
            multiple=True,
            metavar="NAME",
        ),
        Option(
            "output",
            "Where to record the bot's voice.",
            type=Path,
            default=Path("botrun-output.wav"),
            metavar="WAV",
        ),
        Option(
            "speed",
            "Play N times faster than real time.",
            type=float,
            default=1.0,
            min=0.1,
            max=100,
        ),
        Option(
            "rate",
            "Meeting sample rate (Hz) of inputs and output.",
            type=int,
            default=16000,
            min=8000,
            max=48000,
        ),
    ),
    # Nobody can join after the files end: leave once the agent has finished answering.
    bridge_defaults={"idle_timeout_s": 0.0, "leave_grace_s": 1.5},
)


@hookimpl
def botrun_transports() -> list[TransportSpec]:
    return [SPEC]
