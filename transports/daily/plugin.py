"""Registers ``botrun daily``. Light on purpose: it is imported to build ``botrun --help``, so
daily-python, aiohttp and the transport itself are imported only inside :func:`make_transport`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from botrun.core.transport import Transport

AUDIO_OUT_CHOICES = ("virtual-mic", "custom-track")

OPTIONS: tuple[Option, ...] = (
    Option("room", "Daily room URL (https://DOMAIN.daily.co/ROOM).", required=True, metavar="URL"),
    Option(
        "token",
        "Meeting token for the room. Without one, an owner token is minted when "
        "DAILY_API_KEY is set.",
        envvar="DAILY_MEETING_TOKEN",
        secret=True,
        config=False,
        metavar="TOKEN",
    ),
    Option(
        "audio_out",
        "How the bot's voice is published: a virtual microphone device or a custom audio track.",
        default="virtual-mic",
        choices=AUDIO_OUT_CHOICES,
    ),
    Option(
        "dial_out",
        "Once joined, call this phone number (+E.164) or SIP URI (sip:...). "
        "Needs dial-out enabled on the room and an owner token.",
        metavar="NUMBER",
    ),
    Option(
        "dial_out_retries",
        "How often a failed dial-out is retried.",
        type=int,
        default=3,
        min=0,
        max=10,
    ),
    Option(
        "join_timeout_s",
        "Give up joining after this many seconds.",
        type=float,
        default=30.0,
        min=0.1,
        max=600.0,
        metavar="SECONDS",
    ),
    Option(
        "dialin_call_id",
        "Dial-in: the held call's callId (set by botrun serve).",
        config=False,
        metavar="ID",
    ),
    Option(
        "dialin_call_domain",
        "Dial-in: the held call's callDomain (set by botrun serve).",
        config=False,
        metavar="DOMAIN",
    ),
)


def make_transport(ctx: TransportContext) -> Transport:
    """Build the Daily transport; validates the options (UsageError) before anything joins."""
    from . import sdk

    sdk.load()  # a missing daily-python is a usage error before anything starts
    from .transport import DailyOptions, DailyTransport

    return DailyTransport(DailyOptions.from_context(ctx))


@hookimpl
def botrun_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            name="daily",
            help="Join a Daily room (pip install 'botrun[daily]').",
            factory=make_transport,
            options=OPTIONS,
            description=(
                "Join a Daily room and talk with the people in it.\n\n"
                "Needs daily-python: pip install 'botrun[daily]'. Set DAILY_API_KEY to mint an "
                "owner meeting token automatically, or pass --token (or DAILY_MEETING_TOKEN)."
            ),
        )
    ]
