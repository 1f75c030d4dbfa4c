"""The worker's bot processes (issue 20): a call's own secret (its Daily meeting token) never
reaches the worker's log of the bot's output."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from botrun.bots.worker.pool import WarmPool
from botrun.bots.worker.warm import MARK

CHILD = f"""
import json, os, sys
print({MARK!r} + "warm", flush=True)
job = json.loads(sys.stdin.readline())
print("my token is " + job["env"]["DAILY_MEETING_TOKEN"], flush=True)
"""


async def test_a_calls_token_is_masked_in_the_bots_logged_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="botrun.worker.bot")
    pool = WarmPool(1, {"PATH": "/usr/bin:/bin"}, command=[sys.executable, "-c", CHILD])
    assert await pool.wait_warm(60) == 1
    bot, warm = await pool.take()
    token = "tok-" + "x" * 40
    bot.give(["daily"], {"DAILY_MEETING_TOKEN": token}, "s1")
    await bot.exited.wait()
    await pool.close()
    assert warm is True and bot.returncode == 0
    assert "my token is ***" in caplog.text
    assert token not in caplog.text and json.dumps(token) not in caplog.text
