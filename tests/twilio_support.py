"""Shared pieces of the Twilio tests: ``botrun serve`` (the real app from ``build``) on a
loopback port, with the fake Twilio and the simulator, and μ-law speech from espeak-ng."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from speech import speak

from botrun.core.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from botrun.core.hookspecs import hookimpl
from botrun.core.plugins import get_plugin_manager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ulaw_speech(text: str, path: Path, pad_s: float = 1.2) -> bytes:
    """``text`` spoken by espeak-ng at 8 kHz, as μ-law (what a phone caller sends)."""
    pcm = speak(text, path, rate=8000, pad_s=pad_s)
    return pcm16_to_ulaw(pcm.astype("<i2").tobytes())


def as_pcm(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2")


async def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class EventTap:
    """A botrun plugin (``botrun_observe``) that keeps every bridge event of every call."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def botrun_observe(self, event: Any) -> None:
        self.events.append(event)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


@dataclass
class Serve:
    app: web.Application
    url: str
    twilio: FakeTwilio
    tap: EventTap

    @property
    def calls(self) -> Any:
        from botrun.bots.serve.twilio_routes import CALLS

        return self.app[CALLS]


def write_config(path: Path, agent_url: str, extra: str = "", agent: str = "") -> Path:
    greeting = "" if "greeting" in agent else 'greeting = "Hello, how can I help?"\n'
    path.write_text(
        f'[agent]\nurl = "{agent_url}"\n{greeting}{agent}[bridge]\nleave_grace_s = 0.3\n{extra}',
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def serve_with_twilio(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    agent_url: str,
    *,
    max_calls: int = 4,
    config_extra: str = "",
    agent_extra: str = "",
) -> AsyncIterator[Serve]:
    """``botrun serve``'s real application (``build``), Twilio on, Daily off, listening on
    a loopback port that PUBLIC_URL names; the fake Twilio's REST API behind it."""
    from botrun.bots.serve.cli import build

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    monkeypatch.chdir(tmp_path)  # no stray .env
    async with FakeTwilio(public) as tw:
        for name, value in {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "PUBLIC_URL": public,
            "TWILIO_API_URL": tw.api_url,
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("DAILY_API_KEY", "ASSEMBLYAI_API_KEY", "BOTRUN_API_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        cfg = write_config(tmp_path / "bot.toml", agent_url, config_extra, agent_extra)
        app = build("127.0.0.1", port, cfg, 1, 60.0, None, max_calls=max_calls, read_timeout_s=2.0)
        tap = EventTap()
        pm = get_plugin_manager()
        pm.register(tap)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            yield Serve(app, public, tw, tap)
        finally:
            await runner.cleanup()
            pm.unregister(tap)
