"""The simulator's server: a ``websockets`` asyncio server on loopback (or any host) that
authenticates connections, refuses the first K on purpose when asked, mints temporary tokens
(``GET /v1/token``, like the real service) and runs one :class:`Connection` per socket.

Usage in-process::

    async with Simulator(load_scenario("weather"), speed=4) as sim:
        ...connect to sim.url...
        assert sim.session().received_samples == sent
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from botrun.core.errors import UsageError
from botrun.core.secrets import register_secret

from . import limits
from .connection import Connection, now_iso
from .faults import CLOSE_INTERNAL, CLOSE_POLICY, CONNECT_CLOSE_CODES, CONNECT_MESSAGES
from .recorder import prepare_record_dir, save_record
from .scenario import Scenario
from .session import SimSession

log = logging.getLogger("botrun.sim")

#: The socket's own frame limit; messages between MAX_MESSAGE_BYTES and this get an in-band
#: ``invalid_format``, bigger ones close the socket with 1009.
SOCKET_MAX_SIZE = 16 * 1024 * 1024
TOKEN_PATH = "/v1/token"


@dataclass
class _Token:
    expires_at: float
    max_session_duration_s: float
    used: bool = False


class Simulator:
    """A local voice-agent service. ``sessions`` holds every session ever created (in creation
    order), each with its recording, so tests can inspect them after the socket closed."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        speed: float = 1.0,
        resume_window_s: float = 30.0,
        record_dir: Path | None = None,
        retain_audio: bool = True,
        protocol: str = "assemblyai",
        go_away_after_s: float | None = None,
    ) -> None:
        from .wire import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise UsageError(
                f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}"
            )
        #: The wire the simulator speaks (core/sim/wire.py): the Voice Agent API, or an
        #: adapter for OpenAI Realtime or Gemini Live over the same behaviours.
        self.protocol = protocol
        #: Gemini: send goAway this long after each socket's setup, then close it (resumable).
        self.go_away_after_s = go_away_after_s
        for what, value, bounds in (
            ("speed", speed, limits.SPEED),
            ("resume window", resume_window_s, limits.RESUME_WINDOW_S),
            ("go-away delay", go_away_after_s, limits.GO_AWAY_AFTER_S),
        ):
            why = None if value is None else limits.problem(value, bounds)
            if why is not None:
                raise UsageError(f"{what}: {why}")
        self.scenario = scenario or Scenario()
        self.host, self.port = host, port
        self.api_key = api_key or None
        register_secret(self.api_key)
        self.speed = float(speed)
        self.resume_window_s = resume_window_s
        self.record_dir = record_dir
        self.retain_audio = retain_audio
        self.sessions: dict[str, SimSession] = {}
        self.connection_errors: list[dict[str, Any]] = []  # errors sent before any session
        self.connection_attempts = 0
        self._tokens: dict[str, _Token] = {}
        self._server: Server | None = None
        self._connections: set[Connection] = set()

    # ---- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen; ``port=0`` picks a free port (read it from :attr:`url`). A record folder
        that cannot be written is a :class:`UsageError` here."""
        if self.record_dir is not None:
            prepare_record_dir(self.record_dir)
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=SOCKET_MAX_SIZE,
                ping_interval=None,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info(
            "voice-agent simulator listening on %s (scenario %r, speed %gx)",
            self.url,
            self.scenario.name,
            self.speed,
        )

    async def stop(self) -> None:
        """Close every socket (1001) and the listener; save recordings."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()
        if self.record_dir is not None:
            for s in self.sessions.values():
                if not s.ended:  # ended sessions were saved when they ended
                    self._save(s)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def session(self) -> SimSession:
        """The most recently created session (tests usually have exactly one)."""
        if not self.sessions:
            raise LookupError("no session has been created yet")
        return next(reversed(self.sessions.values()))

    # ---- bookkeeping called by connections ----------------------------------------------
    def register_session(self, s: SimSession) -> None:
        self.sessions[s.session_id] = s

    def session_detached(self, s: SimSession) -> None:
        if not s.ended:
            self._save(s)

    def session_ended(self, s: SimSession) -> None:
        self._save(s)
        if not self.retain_audio:
            s.received_audio_buf.clear()

    def _save(self, s: SimSession) -> None:
        """Write a session's recording; a failure (the folder went away, a full disk) is one
        error line and the session goes on."""
        if self.record_dir is None:
            return
        try:
            save_record(s, self.record_dir)
        except OSError as exc:
            log.error(
                "simulator: cannot save the recording of %s to %s: %s",
                s.session_id,
                self.record_dir,
                exc.strerror or exc,
            )

    # ---- auth and tokens -----------------------------------------------------------------
    def _bearer_ok(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        if self.protocol == "gemini":  # Gemini Live: ?key= (or an x-goog-api-key header)
            query = parse_qs(urlsplit(request.path).query)
            value = query.get("key", [""])[0] or request.headers.get("x-goog-api-key", "")
            return secrets.compare_digest(value.strip(), self.api_key)
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(value.strip(), self.api_key)

    def mint_token(
        self, expires_in_s: float = 60.0, max_session_duration_s: float = 10800.0
    ) -> str:
        """A single-use temporary token, as ``GET /v1/token`` returns."""
        token = "tok_" + secrets.token_urlsafe(18)
        register_secret(token)
        self._tokens[token] = _Token(time.monotonic() + expires_in_s, max_session_duration_s)
        return token

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if path != TOKEN_PATH:
            return None
        if not self._bearer_ok(request):
            return self._json(
                conn, HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid API key"}
            )
        query = parse_qs(urlsplit(request.path).query)
        try:
            expires = float(query.get("expires_in_seconds", [""])[0])
            max_dur = float(query.get("max_session_duration_seconds", ["10800"])[0])
        except ValueError:
            return self._json(
                conn,
                HTTPStatus.BAD_REQUEST,
                {"error": "expires_in_seconds and max_session_duration_seconds must be numbers"},
            )
        if not 1 <= expires <= 600 or not 60 <= max_dur <= 10800:
            return self._json(
                conn,
                HTTPStatus.BAD_REQUEST,
                {
                    "error": "expires_in_seconds must be 1..600 and "
                    "max_session_duration_seconds 60..10800"
                },
            )
        return self._json(conn, HTTPStatus.OK, {"token": self.mint_token(expires, max_dur)})

    @staticmethod
    def _json(conn: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
        response = conn.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _authenticate(self, ws: ServerConnection) -> tuple[bool, float]:
        """(allowed, max session duration from a token or 0)."""
        request = ws.request
        assert request is not None
        token = parse_qs(urlsplit(request.path).query).get("token", [None])[0]
        if token is not None:
            info = self._tokens.get(token)
            valid = info is not None and not info.used and time.monotonic() <= info.expires_at
            if info is not None:
                info.used = True
            if valid:
                assert info is not None
                return True, info.max_session_duration_s
            return self.api_key is None and info is None, 0.0
        return self._bearer_ok(request), 0.0

    # ---- connections -------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        from .wire import adapter_for

        self.connection_attempts += 1
        ok, max_duration = self._authenticate(ws)
        adapter = adapter_for(self.protocol)
        wire: Any = ws if adapter is None else adapter(ws, self)
        conn = Connection(self, wire, max_duration)
        if adapter is not None:
            wire.conn = conn
        faults = self.scenario.faults
        if not ok:
            await self._refuse(conn, "UNAUTHORIZED")
            return
        if self.connection_attempts <= faults.connect_error_count:
            await self._refuse(conn, faults.connect_error, injected=True)
            return
        self._connections.add(conn)
        try:
            await conn.run()
        except Exception:  # last line of defence: one broken socket never stops the server
            log.exception("simulator: connection handler failed")
            conn.closed = False
            await conn.error("internal_error", "the simulator failed handling this connection")
            await conn.close(CLOSE_INTERNAL, "internal error")
        finally:
            self._connections.discard(conn)

    async def _refuse(self, conn: Connection, code: str, injected: bool = False) -> None:
        """Refuse a connection with ``code``: in-band ``session.error`` then a close whose
        reason is the code. ``injected`` refusals follow the scenario's delivery knobs."""
        faults = self.scenario.faults
        in_band = faults.connect_error_in_band or not injected
        policy = injected and faults.connect_error_close == "policy"
        self.connection_errors.append(
            {"code": code, "message": CONNECT_MESSAGES[code], "param": None}
        )
        if in_band:
            await conn.send_raw(
                json.dumps(
                    {
                        "type": "session.error",
                        "code": code,
                        "message": CONNECT_MESSAGES[code],
                        "timestamp": now_iso(),
                    }
                )
            )
        await conn.close(CLOSE_POLICY if policy else CONNECT_CLOSE_CODES[code], code)
