"""Registers the ``twilio`` transport (light module: imported by ``botrun --help``).

A Twilio call reaches botrun as a Media Streams WebSocket that Twilio opens, so the
transport runs inside ``botrun serve`` (inbound calls, and the calls ``botrun call``
places); the ``[twilio]`` table of a bot config sets its options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botrun.core.errors import UsageError
from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from botrun.core.transport import Transport


def _factory(ctx: TransportContext) -> Transport:
    raise UsageError(
        "Twilio calls run inside `botrun serve` (its /twilio/voice webhook answers them); "
        "place one with `botrun call NUMBER`. See docs/twilio.md"
    )


SPEC = TransportSpec(
    name="twilio",
    help="Phone calls through Twilio: run by `botrun serve`, placed by `botrun call`.",
    description=(
        "Twilio opens a Media Streams WebSocket to `botrun serve` for each call, so this "
        "transport runs there (many calls per process, --max-calls). Its options live in the "
        "bot config's [twilio] table. See docs/twilio.md."
    ),
    factory=_factory,
    options=(
        Option(
            "transcode",
            "Send the agent 24 kHz PCM16 (transcoded in the bridge) instead of passing the "
            "call's μ-law through (for a backend without audio/pcmu).",
            type=bool,
            default=False,
        ),
        Option(
            "machine_detection",
            "Answering-machine detection for `botrun call`: Enable or DetectMessageEnd.",
            choices=("Enable", "DetectMessageEnd"),
        ),
        Option(
            "from_number",
            "The caller ID of `botrun call` (a Twilio number; or TWILIO_FROM_NUMBER).",
            metavar="E164",
        ),
    ),
)


@hookimpl
def botrun_transports() -> list[TransportSpec]:
    return [SPEC]
