"""Registers ``botrun browser`` (one call with a web page; ``botrun web`` runs call after
call against the simulator). Light on purpose: aiohttp is imported by the factory only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botrun.core.hookspecs import hookimpl
from botrun.core.plugin_types import Option, TransportContext, TransportSpec

if TYPE_CHECKING:
    from botrun.core.transport import Transport

DEFAULT_PORT = 7870


def _factory(ctx: TransportContext) -> Transport:
    from .server import PageServer, check_host
    from .transport import BrowserTransport

    host = str(ctx.options.get("host") or "127.0.0.1")
    if not check_host(host):
        import logging

        logging.getLogger("botrun.browser").warning(
            "serving the page on %s: anyone who can reach it with the token can talk to the "
            "bot (browsers allow the microphone only on https or localhost pages)",
            host,
        )
    port = ctx.options.get("port")  # (0: a free port, which the server reports once bound)
    server = PageServer(host, DEFAULT_PORT if port is None else int(port))
    return BrowserTransport(server, owns_server=True)


OPTIONS: tuple[Option, ...] = (
    Option(
        "host",
        "Interface to serve the page on (loopback unless you say otherwise).",
        default="127.0.0.1",
        metavar="HOST",
    ),
    Option(
        "port",
        "Port of the page (0 picks a free one).",
        type=int,
        default=DEFAULT_PORT,
        min=0,
        max=65535,
    ),
)

SPEC = TransportSpec(
    name="browser",
    help="Talk to the bot from a web page, with your microphone (one call).",
    description=(
        "Serves a local page (the URL printed carries its access token); the call is with "
        "the first tab that opens it and ends when that tab hangs up (Esc) or closes. "
        "Against the real service by default, like every transport: for a local simulator "
        "and call after call, use `botrun web`."
    ),
    factory=_factory,
    options=OPTIONS,
)


@hookimpl
def botrun_transports() -> list[TransportSpec]:
    return [SPEC]
