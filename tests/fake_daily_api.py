"""A fake of Daily's REST API: a real aiohttp server on loopback that records every request.

Covers what botrun calls: ``POST /v1/rooms``, ``GET``/``DELETE /v1/rooms/{name}``,
``POST /v1/meeting-tokens`` and ``POST /v1/dialin/pinlessCallUpdate``, with Daily's
response shapes (rooms carry ``config.sip_uri.endpoint`` when created with ``sip``) and
Daily's error shape ``{"error": ..., "info": ...}``. Tests script failures with
:meth:`FakeDailyApi.fail` (status, body, ``Retry-After``) and slow answers with ``delay_s``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

API_KEY = "fake-daily-key-0123456789"
_JSON = web.RequestKey("json", object)


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    json: Any
    authorization: str | None


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    body: Any
    retry_after: str | None
    times: int


@dataclass
class FakeDailyApi:
    """Start with ``async with FakeDailyApi() as api``; ``api.base_url`` ends in ``/v1``."""

    api_key: str = API_KEY
    domain: str = "botrun-test"
    #: Seconds to wait before answering any request (to exercise client timeouts).
    delay_s: float = 0.0
    #: Report SIP endpoints with the ``sip:`` prefix (Daily has used both forms).
    sip_prefix: bool = False
    requests: list[Recorded] = field(default_factory=list)
    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    pinless_updates: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # -- scripting -------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``method path`` (path after ``/v1``, e.g.
        ``/rooms``; a trailing ``*`` matches a prefix) with ``status`` and ``body``."""
        if body is None:
            body = {"error": "server-error", "info": f"scripted failure {status}"}
        self._failures.append(_Failure(method, path, status, body, retry_after, times))

    def calls(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests to ``method path`` (path after ``/v1``)."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/rooms", self._create_room)
        app.router.add_get("/v1/rooms/{name}", self._get_room)
        app.router.add_delete("/v1/rooms/{name}", self._delete_room)
        app.router.add_post("/v1/meeting-tokens", self._create_token)
        app.router.add_post("/v1/dialin/pinlessCallUpdate", self._pinless)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDailyApi:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- handlers --------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = request.path.removeprefix("/v1")
        self.requests.append(
            Recorded(request.method, path, body, request.headers.get("Authorization"))
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "authentication-error", "Invalid API key")
        for f in self._failures:
            matches = f.path == path or (f.path.endswith("*") and path.startswith(f.path[:-1]))
            if f.method == request.method and matches and f.times > 0:
                f.times -= 1
                headers = {"Retry-After": f.retry_after} if f.retry_after else None
                if isinstance(f.body, str):
                    return web.Response(status=f.status, text=f.body, headers=headers)
                return web.json_response(f.body, status=f.status, headers=headers)
        request[_JSON] = body
        return await handler(request)

    async def _create_room(self, request: web.Request) -> web.Response:
        body = request[_JSON] if isinstance(request[_JSON], dict) else {}
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            return _error(400, "invalid-request-error", "properties must be an object")
        name = body.get("name") or secrets.token_urlsafe(12).replace("_", "x").replace("-", "y")
        if name in self.rooms:
            return _error(400, "invalid-request-error", f"a room named {name} already exists")
        config: dict[str, Any] = {k: v for k, v in props.items() if k != "sip"}
        if isinstance(props.get("sip"), dict):
            config["sip"] = props["sip"]
            endpoint = f"{name}@{self.domain}.sip.daily.co"
            config["sip_uri"] = {"endpoint": f"sip:{endpoint}" if self.sip_prefix else endpoint}
        room = {
            "id": secrets.token_hex(16),
            "name": name,
            "api_created": True,
            "privacy": "public",
            "url": f"https://{self.domain}.daily.co/{name}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "config": config,
        }
        self.rooms[name] = room
        return web.json_response(room)

    async def _get_room(self, request: web.Request) -> web.Response:
        room = self.rooms.get(request.match_info["name"])
        if room is None:
            return _error(404, "not-found", f"room {request.match_info['name']} was not found")
        return web.json_response(room)

    async def _delete_room(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.rooms.pop(name, None) is None:
            return _error(404, "not-found", f"room {name} was not found")
        self.deleted.append(name)
        return web.json_response({"deleted": True, "name": name})

    async def _create_token(self, request: web.Request) -> web.Response:
        body = request[_JSON] if isinstance(request[_JSON], dict) else {}
        props = body.get("properties") or {}
        if not isinstance(props, dict) or props.get("room_name") not in self.rooms:
            return _error(400, "invalid-request-error", "room_name does not exist")
        token = "tok." + secrets.token_urlsafe(24)
        self.tokens[token] = props
        return web.json_response({"token": token})

    async def _pinless(self, request: web.Request) -> web.Response:
        body = request[_JSON] if isinstance(request[_JSON], dict) else {}
        missing = [k for k in ("callId", "callDomain", "sipUri") if not body.get(k)]
        if missing:
            return _error(400, "invalid-request-error", f"missing {', '.join(missing)}")
        self.pinless_updates.append(body)
        return web.json_response({"ok": "true"})


def _error(status: int, error: str, info: str) -> web.Response:
    return web.json_response({"error": error, "info": info}, status=status)
