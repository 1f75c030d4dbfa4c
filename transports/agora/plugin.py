"""``botrun agora``: the Agora transport's plugin entry (light: imported for ``--help``).

The SDK and the transport module load only when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botrun.core.errors import MissingSecretError
from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from .transport import AgoraTransport

OPTIONS: tuple[Option, ...] = (
    Option("channel", "Agora channel name to join.", required=True, metavar="NAME"),
    Option(
        "uid",
        "The bot's numeric user id; 0 lets Agora assign one.",
        type=int,
        default=0,
        min=0,
        max=2**32 - 1,
        metavar="N",
    ),
    Option(
        "app_id",
        "Agora App ID of your project.",
        envvar="AGORA_APP_ID",
        secret=True,
        metavar="ID",
    ),
    Option(
        "certificate",
        "Agora App Certificate; when set, botrun builds (and renews) the RTC token itself.",
        envvar="AGORA_APP_CERTIFICATE",
        secret=True,
        config=False,
        metavar="CERT",
    ),
    Option(
        "token_expiry_s",
        "Lifetime of each token botrun builds, in seconds.",
        type=int,
        default=3600,
        min=60,
        max=24 * 3600,
        metavar="S",
    ),
    Option(
        "join_timeout_s",
        "Give up joining the channel after this many seconds.",
        type=float,
        default=15.0,
        min=1,
        max=300,
        metavar="S",
    ),
)

DESCRIPTION = """Join an Agora channel as a voice bot (needs `pip install 'botrun[agora]'`).

\b
The App ID comes from --app-id or AGORA_APP_ID. If the project has an App Certificate,
set AGORA_APP_CERTIFICATE and botrun builds the RTC token itself and renews it before it
expires; without one, the App ID is used as the token."""


def create_transport(ctx: TransportContext) -> AgoraTransport:
    """Build the transport from validated options (no SDK import yet)."""
    from .transport import AgoraTransport

    opts = ctx.options
    app_id = opts.get("app_id")
    if not app_id:
        raise MissingSecretError("AGORA_APP_ID", "to join an Agora channel (or pass --app-id)")
    return AgoraTransport(
        app_id=app_id,
        channel=opts["channel"],
        uid=int(opts.get("uid") or 0),
        certificate=opts.get("certificate") or None,
        token_expiry_s=int(opts.get("token_expiry_s") or 3600),
        join_timeout_s=float(opts.get("join_timeout_s") or 15.0),
    )


SPEC = TransportSpec(
    name="agora",
    help="Join an Agora channel (botrun agora --channel NAME).",
    factory=create_transport,
    options=OPTIONS,
    description=DESCRIPTION,
)


@hookimpl
def botrun_transports() -> list[TransportSpec]:
    return [SPEC]
