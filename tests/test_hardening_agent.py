"""Hardening suite, agent side: what a stuck, refusing or flaky voice agent can still do.

Each test puts a hostile stand-in agent (tests/agent_server.py, a real websockets server on
loopback) behind the real agent client, or behind a whole call (WAV transport + bridge), and
asserts on the outcome and the exit code, never on timing. Bounds are set small in the config
so the tests are quick; a regression shows as the wrong outcome (the call kept going until
``max_duration_s``, an exit code of 0, a fatal error where a retry was due).

Issue 13 items 6-8, issue 12 item 3 (a session refused at setup is fatal).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from agent_server import AgentServer, Conn

from botrun.core.bridge import CallSummary, run_call
from botrun.core.client import AgentClient
from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.errors import AgentError
from botrun.core.protocol import (
    NewSession,
    ReplyAudio,
    ReplyStarted,
    Resumed,
    SessionError,
    SessionReady,
    SessionResume,
    SessionUpdate,
    TranscriptAgentDelta,
)
from botrun.transports.wav.transport import WavInput, WavTransport

KEY = "sk-test-0123456789abcdef"
RATE = 16000
MAX_CALL_S = 60.0  # a call still running this long failed to leave (the tests' backstop)


def client(url: str, **kw: Any) -> AgentClient:
    opts: dict[str, Any] = dict(
        api_key=KEY, backoff_base=0.01, backoff_max=0.05, connect_timeout=2.0, ready_timeout=2.0
    )
    opts.update(kw)
    return AgentClient(url, {"system_prompt": "test"}, **opts)


def tone(seconds: float) -> bytes:
    import numpy as np

    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


async def run_wav_call(
    tmp_path: Path, url: str, seconds: float = 0.5, **overrides: Any
) -> tuple[CallSummary, list[str]]:
    """One call: a participant speaks a short tone, then leaves. Returns the summary and the
    metrics summary lines."""
    cfg = config_from_dict({"agent": {"greeting": ""}})
    cfg = apply_overrides(
        cfg,
        {
            "agent.url": url,
            "bridge.idle_timeout_s": 0.0,
            "bridge.leave_grace_s": 0.5,
            "bridge.max_duration_s": MAX_CALL_S,
            **overrides,
        },
    )
    transport = WavTransport(
        [WavInput(tmp_path / "in.wav", tone(seconds), 0.0, "alice")], tmp_path / "out.wav", RATE
    )
    summary = await run_call(transport, cfg, api_key=None)
    return summary, summary.metrics.summary().splitlines()


# -- issue 13 item 6: an endless reply ---------------------------------------------------------


async def _endless_reply(conn: Conn, *, audio_forever: bool) -> None:
    await conn.ready()
    await conn.wait_audio(4800)  # the participant is talking
    await conn.send(ReplyStarted("r1"))
    await conn.send(TranscriptAgentDelta("r1", "I will never finish"))
    chunk = b"\x10\x00" * 2400  # 100 ms at 24 kHz
    await conn.send(ReplyAudio(chunk, "r1"))
    with contextlib.suppress(Exception):  # until the bot hangs up
        while audio_forever and not conn.closed.is_set():
            await conn.send(ReplyAudio(chunk, "r1"))  # faster than real time: the queue grows
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("audio_forever", [False, True], ids=["stalled", "streaming"])
async def test_endless_reply_does_not_keep_the_bot_in_an_empty_call(
    tmp_path: Path, audio_forever: bool
) -> None:
    async def script(conn: Conn) -> None:
        await _endless_reply(conn, audio_forever=audio_forever)

    async with AgentServer([script]) as srv:
        summary, _ = await run_wav_call(tmp_path, srv.url, **{"bridge.reply_timeout_s": 1.0})
        conn = await srv.conn(0)
        await asyncio.wait_for(conn.closed.wait(), 10)  # the session was closed by the bot
    assert summary.error is None
    assert summary.reason == "no one left in the meeting"
    assert summary.exit_code == 0


async def test_stalled_reply_is_over_while_people_are_still_there(tmp_path: Path) -> None:
    """No reply.done ever: after reply_timeout_s with no progress the reply counts as done,
    so a later barge-in or the end of the call does not wait on it."""

    async def script(conn: Conn) -> None:
        await _endless_reply(conn, audio_forever=False)

    async with AgentServer([script]) as srv:
        summary, _ = await run_wav_call(
            tmp_path, srv.url, seconds=3.0, **{"bridge.reply_timeout_s": 0.5}
        )
    assert summary.reason == "no one left in the meeting" and summary.error is None
    assert len(summary.metrics.turns) == 1  # the stalled reply was closed as a turn


# -- issue 13 item 7 / issue 12 item 3: a session that never becomes ready --------------------


async def _never_ready(conn: Conn) -> None:
    await conn.next()  # the session.update, never answered


async def _late_ready(conn: Conn) -> None:
    await conn.next()
    await asyncio.sleep(5.0)  # later than the bound the test sets
    await conn.send(SessionReady("late"))


@pytest.mark.parametrize("script", [_never_ready, _late_ready], ids=["never", "late"])
async def test_agent_that_never_answers_fails_the_call(tmp_path: Path, script: Any) -> None:
    async with AgentServer([script]) as srv:
        summary, lines = await run_wav_call(tmp_path, srv.url, **{"agent.ready_timeout_s": 1.0})
    assert isinstance(summary.error, AgentError)
    assert "never answered" in str(summary.error) and srv.url in str(summary.error)
    assert summary.exit_code != 0
    assert any("never answered" in line for line in lines)
    assert "0 agent replies" in lines[0]


def _refuse(code: str, param: str | None) -> Any:
    async def script(conn: Conn) -> None:
        first = await conn.next()
        assert isinstance(first, SessionUpdate)
        await conn.send(SessionError(code, f"the service refuses this ({code})", param))

    return script


REFUSALS = [
    ("invalid_value", "session.output.voice"),
    ("invalid_config", "session.tools[0]"),
    ("invalid_format", None),
]


@pytest.mark.parametrize(("code", "param"), REFUSALS)
async def test_session_refused_at_setup_is_fatal(code: str, param: str | None) -> None:
    async with AgentServer([_refuse(code, param)]) as srv:
        c = client(srv.url)
        with pytest.raises(AgentError) as info:
            await c.start()
        await c.close()
        assert len(srv.conns) == 1  # refused config: a retry would send the same one
    msg = str(info.value)
    assert "refused the session" in msg and code in msg
    if param:
        assert param in msg


async def test_oversized_prompt_refused_by_the_simulator_is_fatal() -> None:
    """The issue's example against the real simulator: a 10 MB system prompt makes the first
    session.update too big; the service answers invalid_format and never becomes ready."""
    from botrun.core.sim import Simulator

    async with Simulator() as sim:
        c = AgentClient(sim.url, {"system_prompt": "x" * 10_000_000}, ready_timeout=5.0)
        with pytest.raises(AgentError, match="refused the session: invalid_format"):
            await c.start()
        await c.close()
        assert sim.connection_attempts == 1


async def test_session_refused_at_setup_fails_the_call(tmp_path: Path) -> None:
    async with AgentServer([_refuse("invalid_value", "session.output.voice")]) as srv:
        summary, lines = await run_wav_call(tmp_path, srv.url)
    assert isinstance(summary.error, AgentError) and summary.exit_code == 1
    assert "invalid_value" in str(summary.error)
    assert any("never answered" in line for line in lines)


async def test_refused_update_after_ready_keeps_the_session() -> None:
    """Only a refusal *before* ready is fatal: a mid-call update the service refuses is
    reported and the session goes on."""

    async def script(conn: Conn) -> None:
        await conn.ready()
        await conn.next()  # the mid-call update
        await conn.send(SessionError("invalid_value", "no", "session.input.keyterms"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        await c.start()
        await c.update_session({"input": {"keyterms": ["x"]}})
        async for ev in c.events():
            if isinstance(ev, SessionError):
                break
        # the same socket still carries the session: the next update arrives on it
        await c.update_session({"input": {"keyterms": ["y"]}})
        later = await (await srv.conn(0)).next()
        assert isinstance(later, SessionUpdate) and later.session["input"]["keyterms"] == ["y"]
        assert c.ready and len(srv.conns) == 1 and c.stats.reconnects == 0
        await c.close()


def _write_wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(tone(seconds))


async def _botrun(*args: str, cwd: Path) -> tuple[int, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), MAX_CALL_S + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("case", ["refused", "never"])
async def test_cli_agent_that_never_answers_exits_nonzero_with_one_line(
    tmp_path: Path, case: str
) -> None:
    _write_wav(tmp_path / "in.wav", 0.5)
    (tmp_path / "bot.toml").write_text(
        f"[agent]\nready_timeout_s = 1.0\n[bridge]\nmax_duration_s = {MAX_CALL_S}\n"
    )
    script = _refuse("invalid_value", "session.output.voice") if case == "refused" else _never_ready
    async with AgentServer([script]) as srv:
        code, err = await _botrun(
            "wav",
            "--config",
            "bot.toml",
            "--agent-url",
            srv.url,
            "--input",
            "in.wav",
            "--output",
            "out.wav",
            cwd=tmp_path,
        )
    assert code == 1, err
    said = "refused the session" if case == "refused" else "never answered"
    errors = [line for line in err.splitlines() if said in line]
    assert len(errors) == 1, err  # said once, as the command's error line
    assert errors[0].startswith("botrun: error: the voice agent at ws://127.0.0.1:")
    assert "Traceback" not in err


# -- issue 13 item 8: a transient error at connect, whichever frame arrives first -------------


def _transient_then_ready(order: str, failures: int = 2) -> list[Any]:
    """The first ``failures`` connections are refused with server_error, delivered as
    ``order``: "close" (only the close frame, reason server_error: what the client sees when
    the close wins the race) or "in-band" (session.error first, then the same close)."""

    async def refuse(conn: Conn) -> None:
        if order == "close":
            await conn.close(1008, "server_error")
            return
        await conn.next()
        await conn.send(SessionError("server_error", "at capacity, retry with backoff"))
        await conn.close(1008, "server_error")

    async def ready(conn: Conn) -> None:
        await conn.ready()

    return [refuse] * failures + [ready]


@pytest.mark.parametrize("order", ["close", "in-band"])
async def test_transient_error_at_connect_is_retried_whatever_arrives_first(order: str) -> None:
    async with AgentServer(_transient_then_ready(order)) as srv:
        c = client(srv.url, start_attempts=5)
        await c.start()
        assert c.ready and c.stats.connects == 3
        await c.close()


@pytest.mark.parametrize("reason", ["UNAUTHORIZED", "FORBIDDEN: key lacks access"])
async def test_auth_close_reason_stays_fatal(reason: str) -> None:
    async def script(conn: Conn) -> None:
        await conn.close(1008, reason)

    async with AgentServer([script]) as srv:
        c = client(srv.url, start_attempts=5)
        with pytest.raises(AgentError, match="ASSEMBLYAI_API_KEY"):
            await c.start()
        await c.close()
        assert len(srv.conns) == 1


async def test_server_error_close_mid_call_resumes_the_session() -> None:
    """After ready, a 1008 close naming a transient code resumes (before: a fresh session,
    losing the conversation)."""

    async def first(conn: Conn) -> None:
        await conn.ready("sess-1")
        await conn.close(1008, "server_error")

    async def second(conn: Conn) -> None:
        await conn.ready("sess-1")

    async with AgentServer([first, second]) as srv:
        c = client(srv.url)
        await c.start()
        async for ev in c.events():
            if isinstance(ev, Resumed | NewSession):
                break
        assert isinstance(ev, Resumed)
        assert isinstance((await srv.conn(1)).log[0], SessionResume)
        await c.close()


async def test_transient_close_at_connect_through_a_whole_call(tmp_path: Path) -> None:
    """The same race end to end: the call goes on after two refusals delivered as close
    frames only, and ends normally."""
    async with AgentServer(_transient_then_ready("close")) as srv:
        summary, lines = await run_wav_call(tmp_path, srv.url)
        assert len(srv.conns) == 3
    assert summary.error is None and summary.reason == "no one left in the meeting"
    assert not any("never answered" in line for line in lines)


def test_messages_from_the_service_are_quoted_short() -> None:
    """A 1 MB error message from the service is not echoed whole into our error."""
    from botrun.core.client import _quote

    assert len(_quote("x" * 1_000_000)) <= 200
    assert _quote("a\nb") == "a b"


# -- the same faults from the simulator (what `botrun agent-sim` users can reproduce) ---------


@pytest.mark.parametrize("in_band", [True, False], ids=["error-then-close", "close-only"])
async def test_simulator_refusals_closed_as_policy_are_retried(in_band: bool) -> None:
    from botrun.core.sim import Simulator
    from botrun.core.sim.scenario import scenario_from_dict

    scenario = scenario_from_dict(
        {
            "faults": {
                "connect_error_count": 2,
                "connect_error_close": "policy",
                "connect_error_in_band": in_band,
            }
        }
    )
    async with Simulator(scenario) as sim:
        c = client(sim.url, start_attempts=5)
        await c.start()
        assert c.ready and sim.connection_attempts == 3
        await c.close()
    assert [e["code"] for e in sim.connection_errors] == ["server_error"] * 2


async def test_simulator_reply_that_never_ends_does_not_hold_the_bot(tmp_path: Path) -> None:
    from botrun.core.sim import Simulator
    from botrun.core.sim.scenario import scenario_from_dict

    # a short tone reply soon after a short turn: spoken well before the bounds below
    scenario = scenario_from_dict(
        {
            "reply": {"default": "tone", "text": "Hi.", "delay_ms": 0},
            "faults": {"reply_never_done": True},
        }
    )
    async with Simulator(scenario) as sim:
        summary, _ = await run_wav_call(
            tmp_path,
            sim.url,
            seconds=1.0,
            **{
                "bridge.reply_timeout_s": 3.0,
                "agent.input.turn_detection.min_silence": 200,
                "agent.input.turn_detection.max_silence": 500,
            },
        )
        statuses = [r.status for s in sim.sessions.values() for r in s.replies]
    assert "stuck" in statuses  # the fault fired: a reply never sent reply.done
    assert summary.error is None and summary.reason == "no one left in the meeting"
