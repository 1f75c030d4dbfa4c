"""Hardening suite, ``botrun serve`` part (issue 13 items 11-14): what misbehaving bots, slow
or hostile HTTP clients, signals and replayed webhooks can still do to serve.

Everything runs for real on loopback: serve's app (or the ``botrun serve`` command), stand-in
bot processes (tests/serve_support.py) and the fake Daily REST API. No timing asserts: every
wait is for a condition, with a generous limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
from fake_daily_api import API_KEY, FakeDailyApi
from serve_support import (
    API_TOKEN,
    AUTH_HEADER,
    DIALIN_SECRET,
    serve_harness,
    wait_for,
    write_stand_in,
)

from botrun.bots.serve.listener import RateLimit
from botrun.bots.serve.webhook import RecentCalls


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@contextlib.contextmanager
def _cleanup_grandchildren(records: Path) -> Iterator[None]:
    """Whatever happens in the test, no stand-in bot or descendant outlives it."""
    try:
        yield
    finally:
        for path in records.glob("*.json"):
            record = json.loads(path.read_text())
            for pid in (record["pid"], record.get("grandchild")):
                if pid and _alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


# -- item 11: process groups --------------------------------------------------------------
async def test_slot_is_freed_when_the_bot_exits_though_a_descendant_holds_its_output(
    tmp_path: Path,
) -> None:
    """The bot exits at once, leaving a child that keeps the bot's stdout open: the slot and
    the room are freed (before: serve waited for the pipe, i.e. the descendant, answering 503
    meanwhile), and the descendant is told to go."""
    env = {"BOT_GRANDCHILD": "plain"}
    async with serve_harness(tmp_path, mode="exit", max_bots=1, extra_env=env) as h:
        with _cleanup_grandchildren(h.records):
            assert (await h.dialin("call-1")).status == 200
            (record,) = await wait_for(h.bot_records, "the bot to start")
            await wait_for(lambda: h.supervisor.busy == 0, "the slot to be freed")
            await wait_for(lambda: h.api.rooms == {}, "the room to be deleted")
            await wait_for(lambda: not _alive(record["grandchild"]), "the descendant to go")
            assert (await h.dialin("call-2")).status == 200  # the slot really is free


async def test_stopping_a_bot_signals_its_whole_process_group(tmp_path: Path) -> None:
    """DELETE /sessions/ID: SIGTERM reaches the bot's descendants too, and one that ignores
    it is killed (before: only the bot's pid was signalled; the descendant lived on)."""
    env = {"BOT_GRANDCHILD": "stubborn"}
    async with serve_harness(tmp_path, stop_timeout_s=0.5, extra_env=env) as h:
        with _cleanup_grandchildren(h.records):
            data = await (await h.dialin("call-1")).json()
            (record,) = await wait_for(h.bot_records, "the bot to start")
            assert _alive(record["grandchild"])
            assert (await h.client.delete(f"/sessions/{data['session_id']}")).status == 202
            await wait_for(lambda: h.supervisor.busy == 0, "the bot to leave")
            await wait_for(lambda: not _alive(record["grandchild"]), "the descendant to go")
            assert not _alive(record["pid"])


async def test_shutdown_kills_every_process_group(tmp_path: Path) -> None:
    """Serve stops with a bot and a descendant that both ignore SIGTERM: both are killed,
    nothing is orphaned, the room is deleted."""
    env = {"BOT_GRANDCHILD": "stubborn"}
    async with serve_harness(tmp_path, mode="stubborn", stop_timeout_s=0.5, extra_env=env) as h:
        with _cleanup_grandchildren(h.records):
            await h.dialin("call-1")
            (record,) = await wait_for(h.bot_records, "the bot to start")
            await h.client.close()  # serve's shutdown
            assert not _alive(record["pid"])
            await wait_for(lambda: not _alive(record["grandchild"]), "the descendant to go")
            assert h.api.rooms == {}


# -- item 14: replayed webhooks -----------------------------------------------------------
async def test_a_signed_webhook_replayed_after_its_bot_ended_starts_nothing(
    tmp_path: Path,
) -> None:
    """The very same signed request, sent again inside the 5-minute window after the call's
    bot has ended, answers "duplicate" (before: a second room and a second bot)."""
    async with serve_harness(tmp_path) as h:
        ts = str(int(time.time()))
        first = await h.dialin("call-r", timestamp=ts)
        assert first.status == 200
        data = await first.json()
        await wait_for(h.bot_records, "the bot to start")
        assert (await h.client.delete(f"/sessions/{data['session_id']}")).status == 202
        await wait_for(lambda: h.supervisor.busy == 0 and h.api.rooms == {}, "the call to end")

        replay = await h.dialin("call-r", timestamp=ts)  # same body, same signature
        assert replay.status == 200
        assert await replay.json() == {"duplicate": True, "ended": True, **data}
        assert len(h.api.calls("POST", "/rooms")) == 1
        assert len(h.bot_records()) == 1 and h.supervisor.sessions() == []
        # Another call is still answered.
        assert (await h.dialin("call-other")).status == 200


async def test_a_call_refused_for_a_daily_failure_can_be_retried(tmp_path: Path) -> None:
    """Only calls that got a bot are remembered: Daily's retry after a 502 gets its bot."""
    async with serve_harness(tmp_path) as h:
        h.api.fail("POST", "/rooms", 400, {"error": "invalid-request-error", "info": "x"})
        assert (await h.dialin("call-f")).status == 502
        assert (await h.dialin("call-f")).status == 200
        await wait_for(h.bot_records, "the bot to start")


def test_recent_calls_forget_after_the_window_and_stay_bounded() -> None:
    now = [1000.0]
    recent = RecentCalls(ttl_s=600, max_entries=3, clock=lambda: now[0])
    recent.remember("a", {"session_id": "s-a"})
    now[0] += 599
    assert recent.get("a") == {"session_id": "s-a"}
    now[0] += 2
    assert recent.get("a") is None
    for name in "bcde":
        recent.remember(name, {})
    assert len(recent) == 3 and recent.get("b") is None and recent.get("e") == {}


# -- item 13: the second signal ------------------------------------------------------------
async def _serve_process(
    tmp_path: Path,
    api_url: str,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """``botrun serve`` as a user runs it, with stand-in bots; returns it once it listens."""
    script = write_stand_in(tmp_path)
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update(
        DAILY_API_KEY=API_KEY,
        DAILY_API_URL=api_url,
        DAILY_DIALIN_SECRET=DIALIN_SECRET,
        ASSEMBLYAI_API_KEY="agent-key",
        BOTRUN_API_TOKEN=API_TOKEN,
        BOT_RECORD_DIR=str(tmp_path / "records"),
        **(env or {}),
    )
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "serve",
        "--port",
        "0",
        "--bot-command",
        shlex.join([sys.executable, str(script)]),
        *args,
        cwd=tmp_path,
        env=full,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    lines: list[str] = []
    port = await _read_until(serve, lines, r"listening on http://127\.0\.0\.1:(\d+)")
    return serve, int(port), lines


async def _read_until(serve: asyncio.subprocess.Process, lines: list[str], pattern: str) -> str:
    assert serve.stderr is not None
    while True:
        line = (await asyncio.wait_for(serve.stderr.readline(), 60)).decode()
        assert line, "serve exited early:\n" + "".join(lines)
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            return found.group(1) if found.groups() else line


async def test_second_sigterm_kills_bot_groups_and_deletes_rooms(tmp_path: Path) -> None:
    """Bots (and their descendants) that ignore SIGTERM; serve gets SIGTERM twice. Serve
    exits, no process is left behind and every room is deleted (before: the second signal
    ended serve on the spot, leaving the rooms and orphaning the bots)."""
    records = tmp_path / "records"
    env = {"BOT_MODE": "stubborn", "BOT_GRANDCHILD": "stubborn"}
    async with FakeDailyApi() as api:
        serve, port, lines = await _serve_process(tmp_path, api.base_url, env=env)
        try:
            with _cleanup_grandchildren(records):
                async with aiohttp.ClientSession(headers=AUTH_HEADER) as http:
                    for _ in range(2):
                        async with http.post(f"http://127.0.0.1:{port}/start", json={}) as r:
                            assert r.status == 200, await r.text()
                await wait_for(lambda: len(list(records.glob("*.json"))) == 2, "two bots")
                bots = [json.loads(p.read_text()) for p in records.glob("*.json")]
                pids = [pid for bot in bots for pid in (bot["pid"], bot["grandchild"])]
                assert len(api.rooms) == 2

                serve.send_signal(signal.SIGTERM)
                await _read_until(serve, lines, r"(shutting down)")
                serve.send_signal(signal.SIGTERM)
                assert serve.stderr is not None
                rest = (await asyncio.wait_for(serve.stderr.read(), 60)).decode()
                code = await asyncio.wait_for(serve.wait(), 60)
                output = "".join(lines) + rest
                assert code == 0, output
                assert "second signal" in output
                assert api.rooms == {} and len(api.deleted) == 2
                for pid in pids:
                    await wait_for(lambda pid=pid: not _alive(pid), f"process {pid} to go")
        finally:
            if serve.returncode is None:
                serve.kill()
                await serve.wait()


# -- item 12: slow and idle clients ---------------------------------------------------------
async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Read until the server closes the connection (what it sent, if anything)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def test_a_request_body_that_never_arrives_is_answered_408(tmp_path: Path) -> None:
    """Headers promise 100 bytes, one arrives: serve answers 408 and closes (before: the
    handler waited for the body for ever)."""
    async with serve_harness(tmp_path, read_timeout_s=0.5) as h:
        port = h.client.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {API_TOKEN}\r\n".encode()
                + b"Content-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            answer = await asyncio.wait_for(_closed_by_server(reader), 30)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert h.api.requests == [] and h.supervisor.busy == 0


async def test_idle_half_open_and_surplus_connections_are_closed(tmp_path: Path) -> None:
    """``botrun serve`` with 256 descriptors and 300 client connections: some send nothing,
    some half a request, some one request and then idle. Every one of them is closed by serve
    (over the cap at once, the rest after the idle timeout), the refusals are logged at a
    limited rate, and afterwards serve still answers and still starts bots (before: the
    connections stayed open for an hour and serve ran out of descriptors)."""
    import resource

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    async with FakeDailyApi() as api:
        serve, port, lines = await _serve_process(
            tmp_path, api.base_url, "--idle-timeout-s", "1", preexec_fn=low_fd_limit
        )
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for i in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if i % 3 == 1:
                    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
                elif i % 3 == 2:
                    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # then idle
                conns.append((reader, writer))
            answers = await asyncio.wait_for(
                asyncio.gather(*(_closed_by_server(r) for r, _ in conns)), 60
            )
            # Some keep-alive requests were answered before their connection went idle.
            assert any(a.startswith(b"HTTP/1.1 200") for a in answers)
            async with aiohttp.ClientSession(headers=AUTH_HEADER) as http:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status == 200
                async with http.post(f"http://127.0.0.1:{port}/start", json={}) as resp:
                    assert resp.status == 200, await resp.text()
            await wait_for(lambda: len(list((tmp_path / "records").glob("*.json"))) == 1, "bot")
        finally:
            for _, writer in conns:
                writer.close()
            if serve.returncode is None:
                serve.terminate()
            assert serve.stderr is not None
            rest = (await asyncio.wait_for(serve.stderr.read(), 60)).decode()
            await serve.wait()
        output = "".join(lines) + rest
        assert "out of system resource" not in output, output[-2000:]
        refused = output.count("refused: ")
        expired = output.count("no complete request within")
        assert refused + expired > 0, output[-2000:]
        assert refused <= 20 and expired <= 20, output[-3000:]  # rate-limited, not 1 per conn


def test_rate_limited_logging_says_how_much_it_dropped() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, period_s=10, clock=lambda: now[0])
    log = logging.getLogger("botrun.serve.net.test")
    records = [
        log.makeRecord(log.name, logging.WARNING, "f", 1, "refused %s", (i,), None)
        for i in range(8)
    ]
    assert [limit.filter(r) for r in records[:5]] == [True, True, True, False, False]
    other = log.makeRecord(log.name, logging.WARNING, "f", 1, "another message", (), None)
    assert limit.filter(other)  # each message template has its own budget
    now[0] = 10.0
    assert limit.filter(records[5])
    assert records[5].getMessage() == "refused 5 (2 similar message(s) suppressed)"


async def test_a_malformed_request_is_one_counted_warning_not_a_traceback(tmp_path: Path) -> None:
    """Fleet-fix item 6: a 100 kB header line put aiohttp's full traceback in serve's log at
    ERROR (serve survived and answered 400). Now: one WARNING line, counted."""
    async with FakeDailyApi() as api:
        serve, port, lines = await _serve_process(tmp_path, api.base_url)
        try:
            answers = []
            for _ in range(2):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
                    await writer.drain()
                    answers.append(await asyncio.wait_for(_closed_by_server(reader), 30))
                finally:
                    writer.close()
            await _read_until(serve, lines, r"\(2 so far\)")
            async with (
                aiohttp.ClientSession(headers=AUTH_HEADER) as http,
                http.get(f"http://127.0.0.1:{port}/health") as resp,
            ):
                assert resp.status == 200  # serve goes on
        finally:
            serve.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(serve.communicate(), 60)
    text = "".join(lines) + rest.decode()
    assert all(a.split(b"\r\n")[0].endswith(b" 400 Bad Request") for a in answers), answers
    malformed = [line for line in text.splitlines() if "malformed request" in line]
    assert len(malformed) == 2 and all("WARNING" in line for line in malformed), text
    assert "Traceback" not in text and "ERROR" not in text, text
