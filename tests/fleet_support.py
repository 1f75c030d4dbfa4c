"""The call-fleet tests' pieces: a real ``redis-server`` on a free loopback port (its own temp
dir, no persistence), real ``botrun worker`` processes, the front door in-process, and a
simulator that counts the calls connected to it at once.

Each worker gets its own simulator (its config's ``agent.url``), so the most calls a
simulator ever had connected at once is the most calls that worker ever ran at once,
counted by the simulator itself, not reported by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from serve_support import API_TOKEN, AUTH_HEADER, DIALIN_KEY
from system_tools import require

from botrun.bots.fleet import jobs
from botrun.bots.fleet.frontdoor import QueueSettings, create_app
from botrun.bots.fleet.redis import connect
from botrun.bots.serve.app import ServeSettings
from botrun.bots.serve.auth import Access, ApiAuth
from botrun.core.sim.server import Simulator

RATE = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    """Await/poll ``predicate`` (sync or async) until truthy: a condition, not a timing."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class RedisServer:
    """A real redis-server on loopback, stoppable and restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.exe = require("redis-server")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def answers() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.write(b"PING\r\n")
            line = await reader.readline()
            writer.close()
            return line.startswith(b"+PONG")

        await wait_until(answers, "redis-server to answer", 20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@asynccontextmanager
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        server.stop()


class CountingSimulator(Simulator):
    """The simulator, counting its agent connections: now and the most at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = 0
        self.most = 0
        self.total = 0

    async def _handle(self, ws: Any) -> None:
        self.connected += 1
        self.total += 1
        self.most = max(self.most, self.connected)
        try:
            await super()._handle(ws)
        finally:
            self.connected -= 1


def write_wav(path: Path, seconds: float, rate: int = RATE) -> Path:
    """A quiet tone lasting ``seconds``: a participant who hums and leaves when it ends."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 220 * t) * 300).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def write_config(path: Path, agent_url: str) -> Path:
    path.write_text(
        f'[agent]\nurl = "{agent_url}"\ngreeting = ""\n\n[bridge]\nleave_grace_s = 0.5\n'
    )
    return path


@dataclass
class WorkerProcess:
    proc: asyncio.subprocess.Process
    log: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def ready(self, timeout: float = 90.0) -> None:
        await wait_until(
            lambda: " ready: capacity " in self.text() or self.proc.returncode is not None,
            f"worker {self.name} to be ready",
            timeout,
        )
        assert self.proc.returncode is None, self.text()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def wait(self, timeout: float = 60.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


def botrun_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("BOTRUN_API_TOKEN", None)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start_worker(
    tmp_path: Path,
    name: str,
    queue_url: str,
    config: Path,
    *,
    capacity: int = 2,
    warm: int = 1,
    drain_timeout_s: float = 60.0,
    extra: tuple[str, ...] = (),
) -> WorkerProcess:
    log = tmp_path / f"worker-{name}.log"
    out = log.open("wb")
    env = botrun_env(BOTRUN_API_TOKEN=API_TOKEN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "worker",
        "--queue",
        queue_url,
        "--capacity",
        str(capacity),
        "--warm",
        str(warm),
        "--drain-timeout",
        str(drain_timeout_s),
        "--transport",
        "wav",
        "--config",
        str(config),
        *extra,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    out.close()
    return WorkerProcess(proc, log, name, env)


async def stop_worker(worker: WorkerProcess) -> None:
    if worker.proc.returncode is None:
        worker.signal(signal.SIGTERM)
        worker.signal(signal.SIGTERM)  # a second signal: stop every call now
        try:
            await worker.wait(30)
        except TimeoutError:
            worker.signal(signal.SIGKILL)
            await worker.wait(10)


@asynccontextmanager
async def front_door(
    queue_url: str, *, queue_wait_s: float = 120.0, max_queued: int = 100
) -> AsyncIterator[TestClient]:
    """The front door app in this process, on a loopback port, with the API token."""
    from botrun.core.plugins import transports

    redis = await connect(queue_url)
    settings = ServeSettings(dialin_key=DIALIN_KEY, auth=ApiAuth(Access.TOKEN, API_TOKEN))
    queue = QueueSettings(
        queue_url=queue_url,
        queue_wait_s=queue_wait_s,
        max_queued=max_queued,
        call_transports=("wav",),
        transport_options={"wav": frozenset(o.name for o in transports()["wav"].options)},
    )
    client = TestClient(
        TestServer(create_app(settings, queue, redis), host="127.0.0.1"), headers=AUTH_HEADER
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def start_wav(client: TestClient, wav: Path, output: Path) -> dict[str, Any]:
    resp = await client.post(
        "/start",
        json={"transport": "wav", "options": {"input": [str(wav)], "output": str(output)}},
    )
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def call_state(client: TestClient, sid: str) -> dict[str, Any]:
    resp = await client.get(f"/sessions/{sid}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def wait_state(
    client: TestClient, sid: str, states: tuple[str, ...], timeout: float = 60.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        record = await call_state(client, sid)
        return record if record.get("state") in states else None

    return dict(await wait_until(reached, f"call {sid} to be {'/'.join(states)}", timeout))


__all__ = ["jobs"]
