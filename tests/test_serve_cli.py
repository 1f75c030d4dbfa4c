"""``botrun serve`` as a user runs it: one-line errors, and SIGTERM fan-out to live bots."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from fake_daily_api import API_KEY, FakeDailyApi
from helpers_cli import run_botrun
from serve_support import DIALIN_SECRET, wait_for, write_stand_in


def test_missing_daily_api_key_is_a_one_line_usage_error(tmp_path: Path) -> None:
    res = run_botrun("serve", cwd=tmp_path, env={"DAILY_API_KEY": ""})
    assert res.returncode == 2
    assert "DAILY_API_KEY is not set" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_dialin_secret_is_a_usage_error(tmp_path: Path) -> None:
    res = run_botrun(
        "serve",
        cwd=tmp_path,
        env={
            "DAILY_API_KEY": API_KEY,
            "DAILY_DIALIN_SECRET": "not base64 !!",
            "ASSEMBLYAI_API_KEY": "k",
        },
    )
    assert res.returncode == 2
    assert "DAILY_DIALIN_SECRET is not valid base64" in res.stderr
    assert "not base64 !!" not in res.stderr  # secrets are never echoed


def test_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_botrun(
            "serve",
            "--port",
            str(port),
            cwd=tmp_path,
            env={"DAILY_API_KEY": API_KEY, "ASSEMBLYAI_API_KEY": "k"},
        )
    assert res.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr


async def test_sigterm_asks_every_bot_to_leave_and_waits(tmp_path: Path) -> None:
    script = write_stand_in(tmp_path)
    async with FakeDailyApi() as api:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(
            DAILY_API_KEY=API_KEY,
            DAILY_API_URL=api.base_url,
            DAILY_DIALIN_SECRET=DIALIN_SECRET,
            ASSEMBLYAI_API_KEY="agent-key",
            BOT_RECORD_DIR=str(tmp_path / "records"),
            BOT_MODE="wait",
        )
        serve = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "serve",
            "--port",
            "0",
            "--max-bots",
            "3",
            "--bot-command",
            shlex.join([sys.executable, str(script)]),
            cwd=tmp_path,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert serve.stderr is not None
        lines: list[str] = []
        try:
            port = None
            while port is None:
                line = (await asyncio.wait_for(serve.stderr.readline(), 30)).decode()
                assert line, "serve exited early:\n" + "".join(lines)
                lines.append(line)
                found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                port = int(found.group(1)) if found else None
            async with aiohttp.ClientSession() as http:
                for _ in range(2):
                    async with http.post(f"http://127.0.0.1:{port}/start", json={}) as resp:
                        assert resp.status == 200, await resp.text()
            records = tmp_path / "records"
            await wait_for(lambda: len(list(records.glob("*.json"))) == 2, "two bots")
            pids = [json.loads(p.read_text())["pid"] for p in records.glob("*.json")]
            assert len(api.rooms) == 2

            serve.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(serve.stderr.read(), 30)
            code = await serve.wait()
        finally:
            if serve.returncode is None:
                serve.kill()
                await serve.wait()
        output = "".join(lines) + rest.decode()
        assert code == 0, output
        assert output.count("leaving on SIGTERM") == 2  # each bot was asked to leave
        for pid in pids:  # serve waited for (reaped) every bot: none is left behind
            assert not Path(f"/proc/{pid}").exists()
        assert api.rooms == {} and len(api.deleted) == 2
        assert API_KEY not in output and "agent-key" not in output


# -- polish item 2: a config no bot could run is refused at start -----------------------------

_SERVE_ENV = {"DAILY_API_KEY": API_KEY, "ASSEMBLYAI_API_KEY": "k", "BOTRUN_API_TOKEN": ""}


def test_a_tool_that_cannot_load_stops_serve_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('[agent]\ntools = ["nonexistent.mod:fn"]\n')
    res = run_botrun("serve", "--port", "0", "--config", str(cfg), cwd=tmp_path, env=_SERVE_ENV)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "listening" not in res.stderr, res.stderr
    assert str(cfg) in lines[0] and "nonexistent.mod:fn" in lines[0]
    assert "Traceback" not in res.stderr


def test_serve_without_daily_python_refuses_to_start(tmp_path: Path) -> None:
    """Every default bot runs ``botrun daily``: without the SDK each dial-in would crash."""
    shadow = tmp_path / "shadow" / "daily"
    shadow.mkdir(parents=True)  # an importable `daily` that fails like a missing one
    (shadow / "__init__.py").write_text("raise ImportError('No module named daily')\n")
    env = {**_SERVE_ENV, "PYTHONPATH": str(shadow.parent)}
    res = run_botrun("serve", "--port", "0", cwd=tmp_path, env=env)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "daily-python" in lines[0], res.stderr
    assert "Traceback" not in res.stderr


async def test_serve_starts_with_a_tool_from_its_directory(tmp_path: Path) -> None:
    """The check loads tools as the bot will (``python -m`` in serve's directory): a marked
    tool in a module next to the config is fine."""
    (tmp_path / "shop_tools.py").write_text(
        "from botrun.core.tools import tool\n\n\n"
        "@tool\n"
        "def order_status(order: str) -> str:\n"
        '    """Where an order is.\n\n    Args:\n        order: the order number\n    """\n'
        '    return "shipped"\n'
    )
    (tmp_path / "bot.toml").write_text('[agent]\ntools = ["shop_tools:order_status"]\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(_SERVE_ENV)
    serve = await asyncio.create_subprocess_exec(
        *shlex.split(f"{sys.executable} -m botrun.bots.cli serve --port 0 --config bot.toml"),
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert serve.stderr is not None
    seen = ""
    try:
        while "listening on" not in seen:
            line = (await asyncio.wait_for(serve.stderr.readline(), 30)).decode()
            assert line, "serve exited:\n" + seen
            seen += line
    finally:
        if serve.returncode is None:
            serve.terminate()
        await asyncio.wait_for(serve.wait(), 30)
