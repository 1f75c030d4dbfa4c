"""Shared pieces of the ``botrun serve`` tests: a stand-in bot program, an app wired to the
fake Daily API, and signed webhook requests.

The stand-in bot is a real child process (what serve spawns), written to a temp dir. It
records its argv and the environment variables serve is responsible for, then behaves as
``BOT_MODE`` says: ``wait`` (until SIGTERM, exit 0), ``crash`` (print, exit 3) or
``stubborn`` (ignore SIGTERM). ``BOT_GRANDCHILD`` (``plain`` or ``stubborn``: ignores
SIGTERM) makes it first start a descendant that shares its stdout; its pid is in the record.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from fake_daily_api import API_KEY, FakeDailyApi

from botrun.bots.serve import webhook
from botrun.bots.serve.app import ServeSettings, create_app
from botrun.bots.serve.auth import Access, ApiAuth
from botrun.bots.serve.supervisor import Supervisor, child_environment
from botrun.transports.daily.rest import DailyRest

DIALIN_KEY = b"serve-test-dialin-key-32-bytes!!"
DIALIN_SECRET = base64.b64encode(DIALIN_KEY).decode()
#: The harness's BOTRUN_API_TOKEN; its client sends it on every request.
API_TOKEN = "serve-test-api-token-0123456789"
AUTH_HEADER = {"Authorization": f"Bearer {API_TOKEN}"}

STAND_IN_BOT = r"""
import json, os, signal, subprocess, sys, time
mode = os.environ.get("BOT_MODE", "wait")
grandchild = None
if os.environ.get("BOT_GRANDCHILD"):
    ignore = os.environ["BOT_GRANDCHILD"] == "stubborn"
    code = ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore else "")
            + "print('grandchild up', flush=True)\n"
            + "time.sleep(120)\n")
    grandchild = subprocess.Popen([sys.executable, "-c", code]).pid  # inherits stdout
# The signal disposition is set before the record is written: tests take the record as
# "the bot is up" and may SIGTERM it at once (on a loaded machine a handler installed after
# the record was sometimes not there yet, and the default action killed the bot silently).
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode != "crash":
    def leave(signum, frame):
        print("leaving on SIGTERM", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, leave)
record = {"argv": sys.argv[1:], "pid": os.getpid(), "grandchild": grandchild,
          "env": {k: os.environ.get(k) for k in (
              "DAILY_MEETING_TOKEN", "DAILY_API_KEY", "DAILY_API_URL", "ASSEMBLYAI_API_KEY",
              "DAILY_DIALIN_SECRET")}}
path = os.path.join(os.environ["BOT_RECORD_DIR"], f"{os.getpid()}.json")
with open(path + ".tmp", "w") as f:
    json.dump(record, f)
os.replace(path + ".tmp", path)
print(f"stand-in bot up in {mode} mode", flush=True)
if mode == "crash":
    print("boom: the bot fell over", flush=True)
    sys.exit(3)
if mode == "exit":
    sys.exit(0)
while True:
    time.sleep(0.05)
"""


def write_stand_in(directory: Path) -> Path:
    path = directory / "stand_in_bot.py"
    path.write_text(STAND_IN_BOT)
    (directory / "records").mkdir(exist_ok=True)
    return path


async def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``predicate`` until it is truthy (a condition, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class ServeHarness:
    client: TestClient
    api: FakeDailyApi
    supervisor: Supervisor
    records: Path

    def bot_records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.records.glob("*.json"))]

    async def dialin(
        self,
        call_id: str = "call-1",
        caller: str = "+15552223333",
        *,
        sign: bool = True,
        body: bytes | None = None,
        key: bytes = DIALIN_KEY,
        timestamp: str | None = None,
    ) -> Any:
        raw = (
            body
            if body is not None
            else json.dumps(
                {
                    "To": "+15550001111",
                    "From": caller,
                    "callId": call_id,
                    "callDomain": "dom-1",
                }
            ).encode()
        )
        headers = {"Content-Type": "application/json"}
        if sign:
            ts = timestamp or str(int(time.time()))
            headers[webhook.SIGNATURE_HEADER] = webhook.sign(key, ts, raw)
            headers[webhook.TIMESTAMP_HEADER] = ts
        return await self.client.post("/dialin", data=raw, headers=headers)


@asynccontextmanager
async def serve_harness(
    tmp_path: Path,
    *,
    mode: str = "wait",
    max_bots: int = 2,
    bot_max_duration_s: float | None = None,
    stop_timeout_s: float = 5.0,
    bot_command: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    config: str | None = None,
    configure: Callable[[FakeDailyApi], Awaitable[None] | None] | None = None,
    auth: ApiAuth | None = None,
    dialin_key: bytes | None = DIALIN_KEY,
    daily_url: str | None = None,
    read_timeout_s: float = 10.0,
) -> AsyncIterator[ServeHarness]:
    """The real app on a loopback port, the fake Daily API, stand-in bots. The API needs
    :data:`API_TOKEN` (unless ``auth`` says otherwise); the harness client sends it.
    ``daily_url`` points serve's REST client elsewhere (e.g. a closed port)."""
    script = write_stand_in(tmp_path)
    async with FakeDailyApi() as api:
        if configure is not None:
            result = configure(api)
            if result is not None:
                await result
        env = child_environment(
            {
                "PATH": "/usr/bin:/bin",
                "DAILY_DIALIN_SECRET": DIALIN_SECRET,
                "BOT_RECORD_DIR": str(tmp_path / "records"),
                "BOT_MODE": mode,
                **(extra_env or {}),
            },
            {"DAILY_API_KEY": API_KEY, "DAILY_API_URL": api.base_url},
        )
        supervisor = Supervisor(
            bot_command=bot_command or [sys.executable, str(script)],
            env=env,
            max_bots=max_bots,
            bot_max_duration_s=bot_max_duration_s,
            stop_timeout_s=stop_timeout_s,
        )
        rest = DailyRest(API_KEY, base_url=daily_url or api.base_url, backoff=0.01, retries=1)
        settings = ServeSettings(
            dialin_key=dialin_key,
            auth=auth or ApiAuth(Access.TOKEN, API_TOKEN),
            room_exp_s=600,
            config=config,
            read_timeout_s=read_timeout_s,
        )
        app = create_app(settings, rest, supervisor)
        client = TestClient(TestServer(app, host="127.0.0.1"), headers=AUTH_HEADER)
        await client.start_server()
        try:
            yield ServeHarness(client, api, supervisor, tmp_path / "records")
        finally:
            await client.close()  # runs on_shutdown: every bot is stopped and awaited
