"""Who may call ``botrun serve``: the API token, the open/closed decision, loopback hosts.

Every endpoint except a *signed* dial-in webhook and the liveness probe needs
``Authorization: Bearer <BOTRUN_API_TOKEN>``, compared in constant time. Without a token the
API is either open (serve listens on loopback only, or the user passed ``--insecure``) or
closed (every API call answers 403 and only signed webhooks start bots).

An open API is open to every program on the machine, and so to every web page a browser on
it shows: such a page may POST to ``127.0.0.1`` (CSRF) or rebind its own name to ``127.0.0.1``
(DNS rebinding). An open API therefore refuses what only a browser sends: a foreign
``Origin``, a POST that is not ``Content-Type: application/json`` (a cross-site form can't
send that without a CORS preflight, which serve never grants) and, on loopback, a ``Host``
header that does not name this machine (:meth:`ApiAuth.refuse_browser`).
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from botrun.core.errors import UsageError

TOKEN_VARIABLE = "BOTRUN_API_TOKEN"
#: Shortest token accepted: anything shorter is guessable over the network.
MIN_TOKEN_CHARS = 16


class Access(enum.Enum):
    TOKEN = "token"  # Authorization: Bearer <token> required
    OPEN = "open"  # no token configured, and open on purpose (loopback or --insecure)
    CLOSED = "closed"  # no token configured: the API answers 403, webhooks still work


@dataclass(frozen=True)
class ApiAuth:
    """The API access rule of a running serve."""

    access: Access
    token: str | None = None
    #: Open because serve listens on loopback only: ``Host`` must name this machine.
    loopback: bool = False

    def check(self, authorization: str | None) -> tuple[int, str] | None:
        """None when a request carrying this ``Authorization`` header may proceed, else the
        HTTP status and message to refuse it with."""
        if self.access is Access.OPEN:
            return None
        if self.access is Access.CLOSED or self.token is None:
            return 403, f"the API is disabled: start serve with {TOKEN_VARIABLE} set to use it"
        scheme, _, presented = (authorization or "").partition(" ")
        expected = self.token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected
        ):
            return 401, "missing or wrong bearer token"
        return None

    def refuse_browser(self, method: str, headers: Mapping[str, str]) -> str | None:
        """None when a request may reach an open API, else why a web page must not drive it
        (answered 403). Only an open API checks: a token is proof enough."""
        if self.access is not Access.OPEN:
            return None
        host = headers.get("Host")
        if self.loopback and host is not None and not names_this_machine(_hostname(host)):
            return (
                f"Host {host[:80]!r} is not this machine (a web page rebinding its name?): "
                f"without {TOKEN_VARIABLE} the API only answers 127.0.0.1/localhost"
            )
        origin = headers.get("Origin")
        if origin is not None and not names_this_machine(_hostname(origin, url=True)):
            return (
                f"cross-origin request from {origin[:80]!r} refused: without {TOKEN_VARIABLE} "
                "the API only answers programs on this machine, not web pages"
            )
        if method == "POST":
            media_type = (headers.get("Content-Type") or "").partition(";")[0].strip().lower()
            if media_type != "application/json":
                return "POST needs 'Content-Type: application/json'"
        return None


def _hostname(value: str, *, url: bool = False) -> str:
    """The host name in a ``Host`` header (``name[:port]``) or an ``Origin`` (a URL)."""
    try:
        return urlsplit(value if url else "//" + value).hostname or ""
    except ValueError:
        return ""


def names_this_machine(name: str) -> bool:
    """True for a loopback address literal, ``localhost`` and ``*.localhost`` (which
    browsers resolve to loopback themselves). No DNS: a rebinding name resolves to
    127.0.0.1 on purpose."""
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or name) only ever means this machine."""
    if not host:  # "" binds every interface
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def decide(*, host: str, token: str | None, has_dialin_secret: bool, insecure: bool) -> ApiAuth:
    """The access rule for ``serve --host host``; :class:`UsageError` when serve must not
    start (a non-loopback host with neither a token nor a dial-in secret, and no
    ``--insecure``)."""
    if token is not None:
        if len(token) < MIN_TOKEN_CHARS:
            raise UsageError(
                f"{TOKEN_VARIABLE} is too short: use at least {MIN_TOKEN_CHARS} random "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return ApiAuth(Access.TOKEN, token)
    loopback = is_loopback(host)
    if insecure or loopback:
        return ApiAuth(Access.OPEN, loopback=loopback)
    if not has_dialin_secret:
        raise UsageError(
            f"refusing to serve on {host or 'every interface'} without authentication: set "
            f"{TOKEN_VARIABLE} (API) and/or DAILY_DIALIN_SECRET (webhooks), listen on "
            "127.0.0.1, or pass --insecure to run unauthenticated on purpose"
        )
    return ApiAuth(Access.CLOSED)
