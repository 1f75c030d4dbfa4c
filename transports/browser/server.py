"""The page's HTTP server (aiohttp): the static page, its WebSocket and the call reports.

Loopback only by default. Every request needs the server's token: the URL printed at start
carries it (``/?token=...``); the page then gets it as an HttpOnly, SameSite=Strict cookie,
so its scripts, WebSocket and report links need nothing more. A WebSocket from another
origin is refused (a web site the user visits cannot reach the bot through the browser).

One call at a time: the server hands a page's WebSocket to the transport waiting for one
(:meth:`PageServer.offer`); a second tab while a call runs gets ``{"type": "busy"}`` and is
closed (code 1013, try again later)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botrun.core.errors import UsageError
from botrun.core.secrets import register_secret

from .messages import MAX_FRAME, control

if TYPE_CHECKING:
    from aiohttp import web

    from .transport import BrowserTransport

log = logging.getLogger("botrun.browser")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::")  # every interface: the page's URL names loopback
COOKIE = "botrun_token"
STATIC = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "worklet.js": "text/javascript",
    "style.css": "text/css",
}
_CALL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
REPORT = "report.html"
WAIT_FOR_CALL_S = 5.0  # a page that connects between two calls waits this long for the next


def static_text(name: str) -> str:
    return resources.files("botrun.transports.browser").joinpath("static", name).read_text("utf-8")


class PageServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7870,
        *,
        token: str | None = None,
        calls_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(18)
        register_secret(self.token)
        self.calls_dir = calls_dir
        self.busy_refusals = 0
        self._waiting: BrowserTransport | None = None
        self._offered = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The page's address with its token, one a browser can open: for a wildcard
        ``--host`` (0.0.0.0, ::) the loopback address on this machine."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return _url(host, self.port, self.token)

    def open_lines(self) -> list[str]:
        """What to print at start: the URL to open, and for a wildcard ``--host`` where
        other machines reach it (this machine's name: any of its addresses works)."""
        lines = [f"open {self.url} in your browser"]
        if self.host in WILDCARD:
            import socket

            other = _url(socket.gethostname(), self.port, self.token)
            lines.append(
                f"from another machine: {other} (or any address of this machine; browsers "
                "allow the microphone only on https or localhost pages)"
            )
        return lines

    # ------------------------------------------------------------------ the call slot
    def offer(self, transport: BrowserTransport) -> None:
        """``transport`` waits for a page."""
        self._waiting = transport
        self._offered.set()

    def withdraw(self, transport: BrowserTransport) -> None:
        if self._waiting is transport:
            self._waiting = None
            self._offered.clear()

    async def _take_call(self) -> BrowserTransport | None:
        """The transport waiting for a page, waiting briefly for one between calls; None
        when a call is under way with another page."""
        t = self._waiting
        if t is not None and not t.available:
            return None  # another page has this call
        if t is None:
            try:
                await asyncio.wait_for(self._offered.wait(), WAIT_FOR_CALL_S)
            except TimeoutError:
                return None
            t = self._waiting
        return t if t is not None and t.available else None

    # ------------------------------------------------------------------ HTTP
    def _authorized(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser (or a same-origin request that sent none)
        return urlsplit(origin).netloc == request.host

    def _app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            if not self._authorized(request):
                return web.Response(
                    status=403,
                    text="botrun: this page needs the token printed by the command that "
                    "started it (open the exact URL it printed)\n",
                )
            if not self._same_origin(request):
                return web.Response(status=403, text="botrun: cross-origin request refused\n")
            return await handler(request)

        app = web.Application(middlewares=[guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/calls", self._calls)
        app.router.add_get("/calls/{name}/report.html", self._report)
        return app

    async def _index(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        resp = web.Response(text=static_text("index.html"), content_type="text/html")
        resp.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"
        # only its own scripts, styles, worklet and WebSocket (nothing from elsewhere)
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        return resp

    async def _static(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=static_text(name), content_type=STATIC[name])

    def _finished_calls(self) -> list[dict[str, str]]:
        if self.calls_dir is None or not self.calls_dir.is_dir():
            return []
        out = []
        for d in sorted(self.calls_dir.iterdir(), reverse=True):
            if d.is_dir() and _CALL_NAME.match(d.name) and (d / REPORT).is_file():
                out.append({"name": d.name, "report": f"/calls/{d.name}/{REPORT}"})
        return out

    async def _calls(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.json_response({"calls": self._finished_calls()})

    async def _report(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        name = request.match_info["name"]
        if self.calls_dir is None or not _CALL_NAME.match(name):
            raise web.HTTPNotFound()
        path = self.calls_dir / name / REPORT
        if not path.is_file():
            raise web.HTTPNotFound()
        # a report has inline styles and no script at all
        csp = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        return web.FileResponse(
            path, headers={"Content-Type": "text/html", "Content-Security-Policy": csp}
        )

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        # The socket's limit is far above the page protocol's: the transport drops (and counts)
        # an oversized message and the call goes on; only beyond MAX_FRAME does it close.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=20.0)
        await ws.prepare(request)
        transport = await self._take_call()
        if transport is None:
            self.busy_refusals += 1
            log.warning("a second page tried to join while a call is under way: told busy")
            await ws.send_str(control("busy"))
            await ws.close(code=1013, message=b"busy")
            return ws
        await transport.attach(ws)
        return ws

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        from aiohttp import web

        if self._runner is not None:
            return
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(
                f"cannot serve the page on {self.host}:{self.port}: {exc.strerror or exc} "
                "(another botrun web running? pick another --port)"
            ) from None
        self._runner = runner
        if self.port == 0 and runner.addresses:  # an ephemeral port: the one the OS picked
            self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _url(host: str, port: int, token: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/?token={token}"


def check_host(host: str) -> bool:
    """True when ``host`` is loopback; a usage error for an empty one."""
    if not host:
        raise UsageError("--host must not be empty")
    return host in LOOPBACK
