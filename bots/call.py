"""``botrun call NUMBER``: place an outbound phone call through Twilio; `botrun serve` runs it.

The call is created with Twilio's REST API (official ``twilio`` package) with
``url = PUBLIC_URL/twilio/voice``: when the callee answers, Twilio fetches serve's voice
webhook, whose TwiML streams the call to serve (``/twilio/stream``), where the bot talks.
Status callbacks (initiated, ringing, answered, completed, busy, no-answer, failed) go to
serve's ``/twilio/status``: they appear in serve's log and in that call's summary, and a final
one ends the call. ``--wait`` follows the call here too and exits with its outcome.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import click

from botrun.core.logs import LEVELS

FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
#: How often ``--wait`` asks Twilio for the call's status.
POLL_S = 1.0


@click.command("call")
@click.argument("number")
@click.option(
    "--from",
    "from_",
    metavar="E164",
    help="Caller ID: one of your Twilio numbers "
    "[default: the config's [twilio] from_number, else TWILIO_FROM_NUMBER].",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bot configuration whose [twilio] table gives from_number and machine_detection "
    "(the bot that talks is the one `botrun serve` runs).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the call and exit with its outcome "
    "(0 completed; 1 busy, no-answer, failed or canceled).",
)
@click.option(
    "--machine-detection",
    type=click.Choice(["Enable", "DetectMessageEnd"]),
    help="Answering-machine detection: AnsweredBy reaches the bot (a TransportStatus "
    "'answered-by' event), which can leave a voicemail and hang up.",
)
@click.option(
    "--ring-timeout-s",
    type=click.IntRange(5, 600),
    help="Seconds to let the phone ring before giving up (Twilio's default: 60).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    help="Logging verbosity.",
)
def command(
    number: str,
    from_: str | None,
    config: Path | None,
    wait: bool,
    machine_detection: str | None,
    ring_timeout_s: int | None,
    log_level: str,
) -> None:
    """Call NUMBER (E.164, e.g. +15551234567) through Twilio and connect it to the bot that
    `botrun serve` runs at PUBLIC_URL.

    Needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, PUBLIC_URL and a caller ID (--from or
    TWILIO_FROM_NUMBER), from the environment or .env. See docs/twilio.md.
    """
    from botrun.core.logs import setup_logging

    setup_logging(log_level)
    code = asyncio.run(place(number, from_, config, wait, machine_detection, ring_timeout_s))
    if code:
        sys.exit(code)


def check_number(value: str, what: str) -> str:
    from botrun.core.errors import UsageError

    value = value.strip()
    if not _E164.match(value):
        raise UsageError(f"{what} must be an E.164 phone number like +15551234567, got {value!r}")
    return value


async def place(
    number: str,
    from_: str | None,
    config: Path | None,
    wait: bool,
    machine_detection: str | None,
    ring_timeout_s: int | None,
    out: Any = None,
) -> int:
    """Place the call (and with ``wait`` follow it); returns the exit code. Prints one line
    per status to ``out`` (default stdout)."""
    from botrun.core.config import load_config, transport_options
    from botrun.core.errors import BotrunError, ConfigError
    from botrun.core.secrets import Secrets
    from botrun.transports.twilio import settings as tw_settings
    from botrun.transports.twilio.plugin import SPEC
    from botrun.transports.twilio.rest import TwilioRest

    def say(line: str) -> None:
        print(line, file=out or sys.stdout, flush=True)

    to = check_number(number, "NUMBER")
    tw_settings.require_package()
    cfg = load_config(config, ["twilio"])
    table = transport_options(SPEC, cfg, {})
    secrets = Secrets()
    # every missing variable is named in one error, the caller ID's too when nothing gives it
    need_from = not (from_ or table.get("from_number"))
    settings = tw_settings.load(secrets, "to place a call through Twilio", need_from=need_from)
    caller = from_ or table.get("from_number") or settings.from_number
    if not caller:
        raise ConfigError(
            "no caller ID: pass --from, set [twilio] from_number in the config, or set "
            "TWILIO_FROM_NUMBER"
        )
    caller = check_number(caller, "--from")
    detection = machine_detection or table.get("machine_detection")
    rest = TwilioRest(settings.account_sid, settings.auth_token, settings.api_url)
    try:
        info = await rest.create_call(
            to,
            caller,
            url=settings.http_url("/twilio/voice"),
            status_callback=settings.http_url("/twilio/status"),
            machine_detection=detection,
            timeout_s=ring_timeout_s,
        )
        say(f"call {info.sid} to {to} from {caller}: {info.status or 'queued'}")
        if not wait:
            return 0
        status = info.status
        while status not in FINAL:
            await asyncio.sleep(POLL_S)
            now = await rest.fetch_call(info.sid)
            if now.status != status:
                status = now.status
                by = f" (answered by {now.answered_by})" if now.answered_by else ""
                say(f"call {info.sid}: {status}{by}")
        if status != "completed":
            raise BotrunError(f"call {info.sid} to {to}: {status}")
        return 0
    finally:
        await rest.close()
