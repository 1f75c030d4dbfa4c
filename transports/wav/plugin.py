"""Registers the built-in ``wav`` transport (light module: imported by ``botrun --help``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from botrun.core.transport import Transport


def _same(value: Any, raw: Any) -> bool:
    """Whether the validated option ``value`` is the config table's ``raw`` list."""
    a, b = list(value or []), list(raw or [])
    return len(a) == len(b) and all(x == y or str(x) == str(y) for x, y in zip(a, b, strict=True))


def _dtmf_problem(value: Any) -> str | None:
    from .keypad import dtmf_problem

    return dtmf_problem(value)


def _phone_problem(value: Any) -> str | None:
    from .keypad import phone_problem

    return phone_problem(value)


def _unpaired(options: dict[str, Any], label: Any) -> str | None:
    from .pairing import unpaired

    return unpaired(options, label)


def _factory(ctx: TransportContext) -> Transport:
    from .transport import WavTransport

    # An option whose value is the config table's (no flag overrode it) is named in errors
    # by the file and key, not by a flag the user never typed.
    table = ctx.config.transports.get("wav", {})
    labels: dict[str, str] = {
        name: f"{ctx.config.source}: [wav] {name}"
        for name in ("input", "at", "participant", "phone")
        if name in table and _same(ctx.options.get(name), table[name])
    }
    return WavTransport.from_options(ctx.options, labels)


SPEC = TransportSpec(
    name="wav",
    help="Play WAV files as meeting participants; record the bot to a WAV file.",
    description=(
        "Each --input is a participant who speaks its file in real time and leaves when the "
        "file ends. An --at or --participant after an --input belongs to that input: --input "
        "a.wav --input b.wav --at 2.5 starts a.wav at 0 s and b.wav at 2.5 s (in a [wav] "
        "table the lists pair by position: at, participant and phone lists have one value "
        'per input, "" for a default name or no phone number). The bot\'s '
        "voice is recorded to --output at the meeting rate with true timing (silence while it"
        " is quiet); it, --transcript and --record never overwrite an input nor each other (a"
        " usage error), and a file that cannot be written ends the run with exit code 1. "
        "--speed N runs N times faster than real time (use a simulator at the same speed). "
        "PCM (8-32 bit) and float WAVs of any sample rate and channel count are converted; "
        "compressed ones (μ-law, A-law, ADPCM) are refused: convert them with sox first."
    ),
    factory=_factory,
    check_paired=_unpaired,
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
            "When the --input before it starts, in seconds (default 0).",
            type=float,
            multiple=True,
            min=0,
            metavar="SECONDS",
            follows="input",
        ),
        Option(
            "participant",
            "Display name of the --input before it (default: file name).",
            multiple=True,
            metavar="NAME",
            follows="input",
        ),
        Option(
            "phone",
            "The --input before it is a phone caller with this number (+E.164 or sip:...; "
            '"" for none, e.g. in a [wav] list: phone = ["", "+14155550123"]).',
            multiple=True,
            metavar="NUMBER",
            follows="input",
            check=_phone_problem,
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
            "dtmf",
            'Keypad presses at call times, SECONDS:DIGITS,...: e.g. "2.5:1,4.0:#" '
            "(pressed by the first phone caller (--phone) in the call at that time, else by its "
            "first participant; a press when nobody is in the call is skipped, and presses "
            "after the last input ends are skipped with a warning at start).",
            metavar="SCHEDULE",
            check=_dtmf_problem,
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
